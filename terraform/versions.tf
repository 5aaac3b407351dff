terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.28: aws_lambda_function_url with authorization_type NONE also grants the
      # lambda:InvokeFunction permission (InvokedViaFunctionUrl) that new function URLs need
      version = ">= 6.28, < 7.0"
    }
  }
}
