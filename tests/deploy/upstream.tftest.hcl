# `terraform test` of the module's upstream settings, with a mocked AWS provider (nothing is
# created anywhere): tests/deploy/test_terraform_upstream.py copies the module and this file
# into a temporary directory and runs it, passing lambda_package_path.

mock_provider "aws" {
  # computed values the provider checks the shape of (ARNs, policy JSON)
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\": \"2012-10-17\", \"Statement\": []}" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:us-east-1:123456789012:mock"
      url = "https://sqs.us-east-1.amazonaws.com/123456789012/mock"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-east-1:123456789012:rule/mock" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::acme-pypi", id = "acme-pypi" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:us-east-1:123456789012:function:mock"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:mock/invocations"
    }
  }
  mock_resource "aws_apigatewayv2_api" {
    defaults = { execution_arn = "arn:aws:execute-api:us-east-1:123456789012:mock" }
  }
}

variables {
  s3_bucket_name = "acme-pypi"
}

# -- what each setting deploys ------------------------------------------------------------------

# first: the overrides below apply to resources this run creates
run "mirror" {
  command = apply

  variables {
    upstream_index_url              = "https://pypi.org/simple/"
    upstream_credentials_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pypi-AbCdEf"
  }

  override_resource {
    target = aws_sqs_queue.dlq
    values = { arn = "arn:aws:sqs:us-east-1:123456789012:dlq", url = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq" }
  }

  override_resource {
    target = aws_lambda_function.reindex
    values = { arn = "arn:aws:lambda:us-east-1:123456789012:function:reindex" }
  }

  assert {
    condition     = aws_lambda_function.api.environment[0].variables["UPSTREAM_INDEX_URL"] == "https://pypi.org/simple/"
    error_message = "UPSTREAM_INDEX_URL"
  }
  assert {
    condition     = aws_lambda_function.api.environment[0].variables["UPSTREAM_MODE"] == "mirror"
    error_message = "mirror is the default mode"
  }
  assert {
    condition     = aws_lambda_function.api.environment[0].variables["UPSTREAM_TTL"] == "300"
    error_message = "UPSTREAM_TTL defaults to 300"
  }
  assert {
    condition     = aws_lambda_function.api.environment[0].variables["UPSTREAM_CREDENTIALS_SECRET"] == var.upstream_credentials_secret_arn
    error_message = "the API function gets the secret's ARN"
  }
  assert {
    condition     = aws_lambda_function.api.environment[0].variables["PULL_QUEUE_URL"] == aws_sqs_queue.pull[0].url
    error_message = "the API function sends to the pull queue"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.api.environment[0].variables), "FALLBACK_INDEX_URL")
    error_message = "no FALLBACK_INDEX_URL beside UPSTREAM_INDEX_URL"
  }
  assert {
    condition     = aws_lambda_function.reindex.environment[0].variables["UPSTREAM_INDEX_URL"] == "https://pypi.org/simple/" && aws_lambda_function.reindex.environment[0].variables["UPSTREAM_CREDENTIALS_SECRET"] == var.upstream_credentials_secret_arn
    error_message = "the indexer copies from the upstream, with its credentials"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.reindex.environment[0].variables), "PULL_QUEUE_URL")
    error_message = "the indexer does not send to the queue"
  }
  assert {
    condition     = aws_sqs_queue.pull[0].sqs_managed_sse_enabled
    error_message = "the pull queue is encrypted"
  }
  assert {
    condition     = aws_sqs_queue.pull[0].visibility_timeout_seconds == 5400 && aws_sqs_queue.pull[0].visibility_timeout_seconds > aws_lambda_function.reindex.timeout
    error_message = "visibility: six times the indexer's timeout"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.pull[0].redrive_policy).deadLetterTargetArn == "arn:aws:sqs:us-east-1:123456789012:dlq" && jsondecode(aws_sqs_queue.pull[0].redrive_policy).maxReceiveCount == 3
    error_message = "failed copies end in the indexer's dead-letter queue"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.pull[0].function_name == "arn:aws:lambda:us-east-1:123456789012:function:reindex" && aws_lambda_event_source_mapping.pull[0].event_source_arn == aws_sqs_queue.pull[0].arn
    error_message = "the indexer reads the pull queue"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.pull[0].function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "ReportBatchItemFailures"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.pull[0].batch_size == 1 && aws_lambda_event_source_mapping.pull[0].scaling_config[0].maximum_concurrency == 5
    error_message = "bounded batch size and concurrency"
  }
  assert {
    condition     = length(aws_iam_role_policy.api_pull) == 1 && length(aws_iam_role_policy.reindex_pull) == 1 && length(aws_iam_role_policy.api_upstream_credentials) == 1 && length(aws_iam_role_policy.reindex_upstream_credentials) == 1
    error_message = "mirror with a secret: both roles get the queue and the secret"
  }
  assert {
    condition     = output.upstream_pull_queue_url == aws_sqs_queue.pull[0].url
    error_message = "the queue URL is an output"
  }
}

run "no_upstream" {
  command = apply

  assert {
    condition     = length(aws_sqs_queue.pull) == 0 && length(aws_lambda_event_source_mapping.pull) == 0
    error_message = "no upstream: no pull queue"
  }
  assert {
    condition     = length(setintersection(keys(aws_lambda_function.api.environment[0].variables), ["UPSTREAM_INDEX_URL", "UPSTREAM_MODE", "UPSTREAM_TTL", "UPSTREAM_CREDENTIALS_SECRET", "PULL_QUEUE_URL", "FALLBACK_INDEX_URL"])) == 0
    error_message = "no upstream: no upstream variables"
  }
  assert {
    condition     = length(aws_iam_role_policy.api_pull) + length(aws_iam_role_policy.api_upstream_credentials) + length(aws_iam_role_policy.reindex_pull) == 0
    error_message = "no upstream: no upstream grants"
  }
  assert {
    condition     = output.upstream_pull_queue_url == null
    error_message = "no upstream: no queue URL"
  }
}

run "fallback_only_keeps_redirecting" {
  command = apply

  variables {
    lambda_api_fallback_index_url = "https://pypi.org/simple/"
  }

  assert {
    condition     = aws_lambda_function.api.environment[0].variables["FALLBACK_INDEX_URL"] == "https://pypi.org/simple/"
    error_message = "FALLBACK_INDEX_URL is set as before"
  }
  assert {
    condition     = !contains(keys(aws_lambda_function.api.environment[0].variables), "UPSTREAM_MODE")
    error_message = "FALLBACK_INDEX_URL alone means redirect: no UPSTREAM_MODE (the code refuses another)"
  }
  assert {
    condition     = length(aws_sqs_queue.pull) == 0
    error_message = "redirect: no pull queue"
  }
}

run "mirror_follows_the_indexer_timeout" {
  command = apply

  variables {
    upstream_index_url                = "https://pypi.example.org/simple/"
    lambda_reindex_timeout            = 120
    upstream_ttl                      = 0
    upstream_pull_batch_size          = 3
    upstream_pull_maximum_concurrency = 2
  }

  assert {
    condition     = aws_sqs_queue.pull[0].visibility_timeout_seconds == 720
    error_message = "visibility: six times the indexer's timeout"
  }
  assert {
    condition     = aws_lambda_function.api.environment[0].variables["UPSTREAM_TTL"] == "0"
    error_message = "UPSTREAM_TTL 0 (always revalidate) is allowed"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.pull[0].batch_size == 3 && aws_lambda_event_source_mapping.pull[0].scaling_config[0].maximum_concurrency == 2
    error_message = "batch size and concurrency are variables"
  }
  assert {
    condition     = length(aws_iam_role_policy.api_upstream_credentials) == 0 && !contains(keys(aws_lambda_function.api.environment[0].variables), "UPSTREAM_CREDENTIALS_SECRET")
    error_message = "no secret: no grant, no variable"
  }
}

run "proxy" {
  command = apply

  variables {
    upstream_index_url              = "https://pypi.org/simple/"
    upstream_mode                   = "proxy"
    upstream_credentials_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pypi-AbCdEf"
  }

  assert {
    condition     = aws_lambda_function.api.environment[0].variables["UPSTREAM_MODE"] == "proxy"
    error_message = "UPSTREAM_MODE"
  }
  assert {
    condition     = length(aws_sqs_queue.pull) == 0 && length(aws_lambda_event_source_mapping.pull) == 0 && !contains(keys(aws_lambda_function.api.environment[0].variables), "PULL_QUEUE_URL")
    error_message = "proxy copies nothing: no queue"
  }
  assert {
    condition     = length(aws_iam_role_policy.api_upstream_credentials) == 1 && length(aws_iam_role_policy.reindex_upstream_credentials) == 0 && length(aws_iam_role_policy.reindex_pull) == 0
    error_message = "proxy: only the API function talks to the upstream"
  }
  assert {
    condition     = length(setintersection(keys(aws_lambda_function.reindex.environment[0].variables), ["UPSTREAM_INDEX_URL", "UPSTREAM_CREDENTIALS_SECRET"])) == 0
    error_message = "proxy: the indexer needs no upstream"
  }
}

run "redirect" {
  command = apply

  variables {
    upstream_index_url = "https://pypi.org/simple/"
    upstream_mode      = "redirect"
  }

  assert {
    condition     = aws_lambda_function.api.environment[0].variables["UPSTREAM_MODE"] == "redirect" && length(aws_sqs_queue.pull) == 0
    error_message = "redirect: no queue"
  }
}

# -- what is refused ------------------------------------------------------------------------------

run "refuses_both_urls" {
  command = plan

  variables {
    upstream_index_url            = "https://pypi.org/simple/"
    lambda_api_fallback_index_url = "https://pypi.org/simple/"
  }

  expect_failures = [aws_lambda_function.api]
}

run "refuses_a_secret_without_an_upstream" {
  command = plan

  variables {
    upstream_credentials_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:pypi-AbCdEf"
  }

  expect_failures = [aws_lambda_function.api]
}

run "refuses_credentials_in_the_url" {
  command = plan

  variables {
    upstream_index_url = "https://alice:s3cret@pypi.example.org/simple/"
  }

  expect_failures = [var.upstream_index_url]
}

run "refuses_a_url_that_is_not_http" {
  command = plan

  variables {
    upstream_index_url = "ftp://pypi.example.org/simple/"
  }

  expect_failures = [var.upstream_index_url]
}

run "refuses_an_unknown_mode" {
  command = plan

  variables {
    upstream_index_url = "https://pypi.org/simple/"
    upstream_mode      = "cache"
  }

  expect_failures = [var.upstream_mode]
}

run "refuses_a_secret_that_is_not_a_secrets_manager_arn" {
  command = plan

  variables {
    upstream_index_url              = "https://pypi.org/simple/"
    upstream_credentials_secret_arn = "alice:s3cret"
  }

  expect_failures = [var.upstream_credentials_secret_arn]
}

run "refuses_a_negative_ttl" {
  command = plan

  variables {
    upstream_index_url = "https://pypi.org/simple/"
    upstream_ttl       = -1
  }

  expect_failures = [var.upstream_ttl]
}

run "refuses_an_unbounded_batch" {
  command = plan

  variables {
    upstream_index_url       = "https://pypi.org/simple/"
    upstream_pull_batch_size = 11
  }

  expect_failures = [var.upstream_pull_batch_size]
}

run "refuses_a_concurrency_lambda_does_not_take" {
  command = plan

  variables {
    upstream_index_url                = "https://pypi.org/simple/"
    upstream_pull_maximum_concurrency = 1
  }

  expect_failures = [var.upstream_pull_maximum_concurrency]
}

run "refuses_more_copies_than_the_indexer_may_run" {
  command = plan

  variables {
    upstream_index_url                  = "https://pypi.org/simple/"
    lambda_reindex_reserved_concurrency = 3
    upstream_pull_maximum_concurrency   = 5
  }

  expect_failures = [aws_lambda_event_source_mapping.pull]
}

# -- Upload 2.0 sessions (issue 16) -------------------------------------------------------------

run "upload_sessions_live_a_day_by_default" {
  command = apply

  assert {
    condition     = aws_lambda_function.api.environment[0].variables["UPLOAD_SESSION_TTL"] == "86400"
    error_message = "UPLOAD_SESSION_TTL: a day by default"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.pypi.rule : r.abort_incomplete_multipart_upload[0].days_after_initiation if r.id == "housekeeping"]) >= 7
    error_message = "unfinished multipart uploads (sessions' included) are aborted only after the 7 days a session may live"
  }
}

run "upload_session_ttl_is_a_variable" {
  command = apply

  variables {
    upload_session_ttl = 604800
  }

  assert {
    condition     = aws_lambda_function.api.environment[0].variables["UPLOAD_SESSION_TTL"] == "604800"
    error_message = "UPLOAD_SESSION_TTL follows upload_session_ttl"
  }
}

run "refuses_a_session_ttl_beyond_seven_days" {
  command = plan

  variables {
    upload_session_ttl = 604801
  }

  expect_failures = [var.upload_session_ttl]
}
