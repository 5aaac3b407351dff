# What answers HTTPS, by var.front. The API function answers all three event shapes
# (REST API payload 1.0, HTTP API and function URL payload 2.0) with links relative to the
# request, so the index works behind any of them and behind a custom domain.

locals {
  rest_api     = var.front == "rest_api"
  http_api     = var.front == "http_api"
  function_url = var.front == "function_url"
}

# -- "http_api": a new HTTP API, index at https://<id>.execute-api.<region>.amazonaws.com/simple/

resource "aws_apigatewayv2_api" "http" {
  count         = local.http_api ? 1 : 0
  name          = local.api_name
  description   = "serverless-pypi: private Python package index (${var.s3_bucket_name})"
  protocol_type = "HTTP"
  tags          = var.tags
}

resource "aws_apigatewayv2_integration" "http" {
  count                  = local.http_api ? 1 : 0
  api_id                 = aws_apigatewayv2_api.http[0].id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST" # how API Gateway calls Lambda, whatever the client's method
  integration_uri        = aws_lambda_function.api.invoke_arn
  payload_format_version = "2.0"
}

# One catch-all route: the function maps /simple/..., / and /legacy/ (uploads) and answers 404
# elsewhere, which keeps trailing-slash redirects (PEP 503) in one place.
resource "aws_apigatewayv2_route" "http" {
  #checkov:skip=CKV_AWS_309:The index authenticates uploads (and, with require_auth_for_read, reads) with its own tokens over Basic auth, which pip, uv, poetry and twine send; an API Gateway authorizer would need a second credential store.
  count              = local.http_api ? 1 : 0
  api_id             = aws_apigatewayv2_api.http[0].id
  route_key          = "$default"
  target             = "integrations/${aws_apigatewayv2_integration.http[0].id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "http_access" {
  #checkov:skip=CKV_AWS_158:Access logs hold request ids, methods, paths and statuses only (no query strings, no headers), so the default CloudWatch encryption is enough.
  #checkov:skip=CKV_AWS_338:Retention is a variable (30 days by default); access logs are for debugging, not audit.
  count             = local.http_api ? 1 : 0
  name              = "/aws/apigateway/${local.api_name}"
  retention_in_days = var.log_group_api_retention_in_days
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "http" {
  count       = local.http_api ? 1 : 0
  api_id      = aws_apigatewayv2_api.http[0].id
  name        = "$default"
  auto_deploy = true
  tags        = var.tags

  default_route_settings {
    throttling_burst_limit = var.api_throttling_burst_limit
    throttling_rate_limit  = var.api_throttling_rate_limit
  }

  # no query strings or headers: they may carry tokens
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.http_access[0].arn
    format = jsonencode({
      requestId      = "$context.requestId"
      time           = "$context.requestTime"
      method         = "$context.httpMethod"
      path           = "$context.path"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latencyMs      = "$context.responseLatency"
      error          = "$context.integrationErrorMessage"
    })
  }
}

resource "aws_lambda_permission" "http_api" {
  count         = local.http_api ? 1 : 0
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http[0].execution_arn}/*"
}

# -- "function_url": index at https://<url-id>.lambda-url.<region>.on.aws/simple/ --------------

resource "aws_lambda_function_url" "api" {
  #checkov:skip=CKV_AWS_258:Public by design, as an index must be for pip; the index checks its own tokens (Basic auth) for uploads and, with require_auth_for_read, for reads. Clients cannot sign requests with SigV4.
  count              = local.function_url ? 1 : 0
  function_name      = aws_lambda_function.api.function_name
  authorization_type = "NONE"
  invoke_mode        = "BUFFERED"
}

# Public access to a function URL (auth type NONE) created since October 2025 needs two grants:
# lambda:InvokeFunctionUrl (condition lambda:FunctionUrlAuthType = NONE) and
# lambda:InvokeFunction (condition lambda:InvokedViaFunctionUrl = true), else it answers 403.
# The provider adds both statements when it creates the URL, but outside the state: they are
# not restored when removed, nor added to a URL created by an older provider. These two are in
# the state. Their statement ids differ from the provider's, so both sets can coexist.
resource "aws_lambda_permission" "function_url" {
  #checkov:skip=CKV_AWS_301:Public by design, as an index must be for pip: the grant applies only to calls through the function URL, and the index checks its own tokens for uploads and, with require_auth_for_read, for reads.
  count                  = local.function_url ? 1 : 0
  statement_id           = "AllowPublicFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.api.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

resource "aws_lambda_permission" "function_url_invoke" {
  #checkov:skip=CKV_AWS_301:Public by design, as an index must be for pip: invoked_via_function_url limits the grant to calls through the function URL, and the index checks its own tokens for uploads and, with require_auth_for_read, for reads.
  count                    = local.function_url ? 1 : 0
  statement_id             = "AllowPublicInvokeViaFunctionUrl"
  action                   = "lambda:InvokeFunction"
  function_name            = aws_lambda_function.api.function_name
  principal                = "*"
  invoked_via_function_url = true
}

# -- "rest_api": routes on your REST API, as the reference module's v7 does --------------------
#
# You own the REST API, its deployment and its stage (name it "simple": the stage is the index
# root), and set binary_media_types = ["*/*"] on it. Redeploy when api_deployment_trigger changes.

resource "aws_api_gateway_resource" "proxy" {
  count       = local.rest_api ? 1 : 0
  rest_api_id = var.api_id
  parent_id   = var.api_root_resource_id
  path_part   = "{package+}"
}

resource "aws_api_gateway_method" "root" {
  #checkov:skip=CKV_AWS_59:The index authenticates with its own tokens (Basic auth, which pip and twine send); api_authorization_type can add an authorizer.
  #checkov:skip=CKV2_AWS_53:The function validates every request itself (paths, forms, tokens) and answers 4xx.
  count         = local.rest_api ? 1 : 0
  rest_api_id   = var.api_id
  resource_id   = var.api_root_resource_id
  http_method   = "ANY"
  authorization = var.api_authorization_type
  authorizer_id = var.api_authorizer_id
}

resource "aws_api_gateway_method" "proxy" {
  #checkov:skip=CKV_AWS_59:The index authenticates with its own tokens (Basic auth, which pip and twine send); api_authorization_type can add an authorizer.
  #checkov:skip=CKV2_AWS_53:The function validates every request itself (paths, forms, tokens) and answers 4xx.
  count         = local.rest_api ? 1 : 0
  rest_api_id   = var.api_id
  resource_id   = aws_api_gateway_resource.proxy[0].id
  http_method   = "ANY"
  authorization = var.api_authorization_type
  authorizer_id = var.api_authorizer_id
}

resource "aws_api_gateway_integration" "root" {
  count                   = local.rest_api ? 1 : 0
  rest_api_id             = var.api_id
  resource_id             = var.api_root_resource_id
  http_method             = aws_api_gateway_method.root[0].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.api.invoke_arn
}

resource "aws_api_gateway_integration" "proxy" {
  count                   = local.rest_api ? 1 : 0
  rest_api_id             = var.api_id
  resource_id             = aws_api_gateway_resource.proxy[0].id
  http_method             = aws_api_gateway_method.proxy[0].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.api.invoke_arn
}

resource "aws_lambda_permission" "rest_api" {
  count         = local.rest_api ? 1 : 0
  statement_id  = "AllowRestApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${var.api_execution_arn}/*"
}

locals {
  index_url = (
    local.rest_api ? "https://${var.api_id}.execute-api.${data.aws_region.current.region}.${data.aws_partition.current.dns_suffix}/${var.api_stage_name}/" :
    local.http_api ? "${aws_apigatewayv2_api.http[0].api_endpoint}/simple/" :
    "${trimsuffix(aws_lambda_function_url.api[0].function_url, "/")}/simple/"
  )

  # what a REST API deployment must follow (the reference module's output of the same name)
  api_deployment_trigger = local.rest_api ? sha1(jsonencode([
    aws_api_gateway_resource.proxy[0].id,
    aws_api_gateway_method.root[0].id,
    aws_api_gateway_method.proxy[0].id,
    aws_api_gateway_integration.root[0].id,
    aws_api_gateway_integration.proxy[0].id,
    aws_api_gateway_integration.proxy[0].uri,
  ])) : null
}
