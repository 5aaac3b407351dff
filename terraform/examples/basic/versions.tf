terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.28, < 7.0"
    }
  }

  # Keep the state somewhere shared and durable, e.g.:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "serverless-pypi.tfstate"
  #   region       = "us-east-1"
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = { Application = "serverless-pypi" }
  }
}
