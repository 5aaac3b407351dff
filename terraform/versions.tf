terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.28: aws_lambda_permission's invoked_via_function_url, for the lambda:InvokeFunction
      # grant that function URLs created since October 2025 need (front.tf)
      version = ">= 6.28, < 7.0"
    }
  }
}
