output "index_url" {
  description = "The index URL for pip, uv, poetry and pdm (ends in /simple/ or /<stage>/); twine and `uv publish` upload to the same URL."
  value       = local.index_url
}

output "api_deployment_trigger" {
  description = "front = \"rest_api\": put it in your aws_api_gateway_deployment's triggers, so the stage is redeployed when the module's routes change. Null otherwise."
  value       = local.api_deployment_trigger
}

output "s3_bucket_name" {
  description = "Name of the bucket of packages."
  value       = aws_s3_bucket.pypi.id
}

output "s3_bucket_arn" {
  description = "ARN of the bucket of packages."
  value       = aws_s3_bucket.pypi.arn
}

output "store_url" {
  description = "The --store argument of the serverless-pypi command for this index."
  value       = "s3://${aws_s3_bucket.pypi.id}${local.s3_prefix == "" ? "" : "/${trimsuffix(local.s3_prefix, "/")}"}"
}

output "lambda_api_function_name" {
  description = "Name of the API function."
  value       = aws_lambda_function.api.function_name
}

output "lambda_api_function_arn" {
  description = "ARN of the API function."
  value       = aws_lambda_function.api.arn
}

output "lambda_reindex_function_name" {
  description = "Name of the indexer function (invoke it with {\"reindex\": \"full\"} to reindex everything now)."
  value       = aws_lambda_function.reindex.function_name
}

output "lambda_reindex_function_arn" {
  description = "ARN of the indexer function."
  value       = aws_lambda_function.reindex.arn
}

output "iam_role_api_arn" {
  description = "ARN of the API function's role."
  value       = aws_iam_role.api.arn
}

output "iam_role_reindex_arn" {
  description = "ARN of the indexer's role."
  value       = aws_iam_role.reindex.arn
}

output "event_rule_arn" {
  description = "ARN of the EventBridge rule that feeds S3 object events to the indexer."
  value       = aws_cloudwatch_event_rule.s3.arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue of events the indexer could not process."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "http_api_id" {
  description = "front = \"http_api\": ID of the HTTP API (for a custom domain's API mapping). Null otherwise."
  value       = local.http_api ? aws_apigatewayv2_api.http[0].id : null
}

output "function_url" {
  description = "front = \"function_url\": the function URL (the index is at <url>simple/). Null otherwise."
  value       = local.function_url ? aws_lambda_function_url.api[0].function_url : null
}

output "upstream_pull_queue_url" {
  description = "upstream_mode = \"mirror\": URL of the queue through which the API function asks the indexer for pulled-through copies (PULL_QUEUE_URL). Null otherwise."
  value       = local.upstream_mirror ? aws_sqs_queue.pull[0].url : null
}

output "upstream_pull_queue_arn" {
  description = "upstream_mode = \"mirror\": ARN of the pull queue. Null otherwise."
  value       = local.upstream_mirror ? aws_sqs_queue.pull[0].arn : null
}
