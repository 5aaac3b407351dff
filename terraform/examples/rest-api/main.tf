# Bring your own REST API (the reference module's v7 way): you own the API, its deployment
# and its stage; the module adds ANY on the root resource and on {package+}, and the function.
#   make lambda   (at the repository root)
#   terraform init && terraform apply -var bucket_name=acme-pypi

terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.28, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "AWS region of the index."
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "Name of the bucket of packages (globally unique)."
  type        = string
}

resource "aws_api_gateway_rest_api" "pypi" {
  name        = "serverless-pypi"
  description = "Private Python package index"

  # "*/*": uploads (multipart/form-data) reach the function intact, and the gzip-compressed
  # pages the function returns base64-encoded are decoded for every client's Accept header.
  binary_media_types = ["*/*"]

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

module "pypi" {
  source = "../.."

  front                = "rest_api"
  api_id               = aws_api_gateway_rest_api.pypi.id
  api_execution_arn    = aws_api_gateway_rest_api.pypi.execution_arn
  api_root_resource_id = aws_api_gateway_rest_api.pypi.root_resource_id
  # api_stage_name defaults to "simple", the stage below (used for the index_url output)

  s3_bucket_name     = var.bucket_name
  upstream_index_url = "https://pypi.org/simple/" # mirror mode: PyPI's files pulled through
}

resource "aws_api_gateway_deployment" "pypi" {
  rest_api_id = aws_api_gateway_rest_api.pypi.id

  triggers = { redeployment = module.pypi.api_deployment_trigger }

  lifecycle {
    create_before_destroy = true
  }
}

# The stage is the index root: https://<api>.execute-api.<region>.amazonaws.com/simple/
resource "aws_api_gateway_stage" "simple" {
  #checkov:skip=CKV_AWS_73:X-Ray tracing of an index adds cost for little insight; the function logs every request.
  #checkov:skip=CKV_AWS_76:The function logs every request (method, path, status); add access_log_settings if you need API Gateway's view too.
  #checkov:skip=CKV_AWS_120:Caching is left to clients: pages revalidate with ETags (304), downloads redirect to S3.
  #checkov:skip=CKV2_AWS_29:A WAF costs more than a small private index; add one to the stage if you need it.
  #checkov:skip=CKV2_AWS_51:Clients authenticate with the index's tokens; mutual TLS needs a custom domain with a truststore, which pip, uv and twine users would each have to configure.
  #checkov:skip=CKV2_AWS_4:Logging level is set per method with aws_api_gateway_method_settings if needed; the function logs every request.
  deployment_id = aws_api_gateway_deployment.pypi.id
  rest_api_id   = aws_api_gateway_rest_api.pypi.id
  stage_name    = "simple"
}

output "index_url" {
  description = "pip/uv/poetry/pdm index URL, and the upload URL for twine."
  value       = module.pypi.index_url
}
