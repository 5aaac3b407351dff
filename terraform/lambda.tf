# The two functions share one zip and differ in entry point, environment and role.
#
# Least privilege, per function (keys relative to var.s3_prefix):
#   API      lists the bucket; reads every key (pages, manifests, tokens, distributions, and
#            presigns GET/HEAD of distributions); writes and deletes <project>/<file> and the
#            derived data (uploads, tokens, curation, cached upstream pages and metadata):
#            keys inside a folder, and index.html; never a pulled-through upstream copy
#   indexer  lists the bucket; reads every key; writes and deletes only the derived data:
#            .serverless-pypi/* (pulled-through upstream copies included) and index.html;
#            sends what it cannot process to the DLQ
# upstream.tf adds what the upstream needs (the pull queue, the credentials secret).

# -- log groups (created here, so retention applies from the first line) --------------------------

resource "aws_cloudwatch_log_group" "api" {
  #checkov:skip=CKV_AWS_158:The logs hold method, path, status and timings only (no tokens, no presigned URLs), so the default CloudWatch encryption is enough.
  #checkov:skip=CKV_AWS_338:Retention is a variable (30 days by default); request logs are for debugging, not audit.
  name              = "/aws/lambda/${local.lambda_api_function_name}"
  retention_in_days = var.log_group_api_retention_in_days
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "reindex" {
  #checkov:skip=CKV_AWS_158:The logs hold S3 keys and counts only, so the default CloudWatch encryption is enough.
  #checkov:skip=CKV_AWS_338:Retention is a variable (30 days by default); indexer logs are for debugging, not audit.
  name              = "/aws/lambda/${local.lambda_reindex_function_name}"
  retention_in_days = var.log_group_reindex_retention_in_days
  tags              = var.tags
}

# -- IAM -------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "api" {
  name                 = "${local.iam_role_name}-api"
  description          = "serverless-pypi API function: reads the index, writes uploads and tokens"
  assume_role_policy   = data.aws_iam_policy_document.assume_lambda.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role" "reindex" {
  name                 = "${local.iam_role_name}-reindex"
  description          = "serverless-pypi indexer function: reads the bucket, writes derived data"
  assume_role_policy   = data.aws_iam_policy_document.assume_lambda.json
  permissions_boundary = var.iam_role_permissions_boundary
  tags                 = var.tags
}

data "aws_iam_policy_document" "api" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.api.arn}:*"]
  }

  statement {
    sid       = "ListIndex"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    dynamic "condition" {
      for_each = local.s3_prefix == "" ? [] : [local.s3_prefix]

      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${condition.value}*"]
      }
    }
  }

  statement {
    sid       = "ReadIndex"
    actions   = ["s3:GetObject"]
    resources = [local.index_keys_arn]
  }

  statement {
    sid       = "WriteUploadsTokensAndDerivedData"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = [local.folder_keys_arn, local.root_html_arn]
  }

  # Upload 2.0 sessions: s3:PutObject (above) covers creating, filling and completing their
  # multipart uploads, the parts clients PUT to presigned URLs, and the copies into the
  # project folders at publish; listing the parts (to verify and resume) and aborting an
  # upload (cancel, a part that failed verification) are actions of their own
  statement {
    sid       = "UploadSessionParts"
    actions   = ["s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"]
    resources = [local.sessions_arn]
  }

  # Pulled-through copies of upstream files are written by the indexer only, after it checked
  # them against the upstream's sha256: whatever a request makes this function do, it cannot
  # plant a file that the index would then serve as the upstream's. (It may delete one: a
  # revalidated page that no longer lists a file forgets its copy.)
  statement {
    sid       = "NeverWritePulledThroughCopies"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = [local.upstream_files_arn]
  }
}

data "aws_iam_policy_document" "reindex" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.reindex.arn}:*"]
  }

  statement {
    sid       = "ListIndex"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    dynamic "condition" {
      for_each = local.s3_prefix == "" ? [] : [local.s3_prefix]

      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${condition.value}*"]
      }
    }
  }

  statement {
    sid       = "ReadIndex"
    actions   = ["s3:GetObject"]
    resources = [local.index_keys_arn]
  }

  statement {
    sid       = "WriteDerivedDataOnly"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = [local.derived_arn, local.root_html_arn]
  }

  # the sweep of the scheduled reindex ends what expired upload sessions left (their
  # documents and staged files are derived data, above)
  statement {
    sid       = "AbortExpiredSessionUploads"
    actions   = ["s3:AbortMultipartUpload"]
    resources = [local.sessions_arn]
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }
}

resource "aws_iam_role_policy" "api" {
  name   = "serverless-pypi-api"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api.json
}

resource "aws_iam_role_policy" "reindex" {
  name   = "serverless-pypi-reindex"
  role   = aws_iam_role.reindex.id
  policy = data.aws_iam_policy_document.reindex.json
}

# -- the functions ---------------------------------------------------------------------------------

resource "aws_lambda_function" "api" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by the front; a dead-letter queue only applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_117:The function talks to S3 (and with an upstream to SQS, Secrets Manager and the upstream index over HTTPS); a VPC would add NAT or endpoint costs and cold-start time for no isolation gain.
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (bucket name, URLs, switches, the ARN of the upstream's credentials secret); tokens live hashed in the bucket.
  #checkov:skip=CKV_AWS_272:The zip is built reproducibly by `make lambda` and its hash is pinned by source_code_hash; code signing needs an AWS Signer profile the module cannot assume.
  function_name                  = local.lambda_api_function_name
  description                    = var.lambda_api_description
  role                           = aws_iam_role.api.arn
  filename                       = local.lambda_package_path
  source_code_hash               = filebase64sha256(local.lambda_package_path)
  handler                        = local.handler_api
  runtime                        = local.lambda_runtime
  architectures                  = [local.lambda_architecture]
  memory_size                    = var.lambda_api_memory_size
  timeout                        = var.lambda_api_timeout
  reserved_concurrent_executions = var.lambda_api_reserved_concurrency
  tags                           = var.tags

  environment {
    variables = { for k, v in local.api_environment : k => v if v != null && v != "" }
  }

  # JSON, with the platform's START/END/REPORT lines (INFO) left out: a request is logged
  # only when LOG_REQUESTS asks for it, a failure always (docs/deploy.md, "What it costs")
  logging_config {
    log_format            = "JSON"
    application_log_level = "INFO"
    system_log_level      = "WARN"
    log_group             = aws_cloudwatch_log_group.api.name
  }

  tracing_config {
    mode = "PassThrough"
  }

  lifecycle {
    precondition {
      condition     = var.front != "rest_api" || (var.api_id != null && var.api_execution_arn != null && var.api_root_resource_id != null)
      error_message = "front = \"rest_api\" needs api_id, api_execution_arn and api_root_resource_id of your REST API."
    }

    precondition {
      condition     = var.lambda_api_fallback_index_url == null || var.upstream_index_url == ""
      error_message = "Set upstream_index_url or lambda_api_fallback_index_url, not both: lambda_api_fallback_index_url is upstream_index_url with upstream_mode = \"redirect\"."
    }

    precondition {
      condition     = var.upstream_credentials_secret_arn == "" || var.upstream_index_url != ""
      error_message = "upstream_credentials_secret_arn needs upstream_index_url (the credentials are the upstream's)."
    }
  }

  depends_on = [aws_iam_role_policy.api, aws_iam_role_policy.api_pull, aws_iam_role_policy.api_upstream_credentials]
}

resource "aws_lambda_function" "reindex" {
  #checkov:skip=CKV_AWS_117:The function talks to S3 and SQS (and in mirror mode to Secrets Manager and the upstream index over HTTPS); a VPC would add NAT or endpoint costs for no isolation gain.
  #checkov:skip=CKV_AWS_173:The environment holds the bucket name, prefix, upstream URL and the ARN of the upstream's credentials secret only.
  #checkov:skip=CKV_AWS_272:The zip is built reproducibly by `make lambda` and its hash is pinned by source_code_hash; code signing needs an AWS Signer profile the module cannot assume.
  function_name                  = local.lambda_reindex_function_name
  description                    = var.lambda_reindex_description
  role                           = aws_iam_role.reindex.arn
  filename                       = local.lambda_package_path
  source_code_hash               = filebase64sha256(local.lambda_package_path)
  handler                        = local.handler_reindex
  runtime                        = local.lambda_runtime
  architectures                  = [local.lambda_architecture]
  memory_size                    = var.lambda_reindex_memory_size
  timeout                        = var.lambda_reindex_timeout
  reserved_concurrent_executions = var.lambda_reindex_reserved_concurrency
  tags                           = var.tags

  environment {
    variables = { for k, v in local.reindex_environment : k => v if v != null && v != "" }
  }

  # what still fails after Lambda's own retries of an asynchronous (EventBridge) invocation
  dead_letter_config {
    target_arn = aws_sqs_queue.dlq.arn
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.reindex.name
  }

  tracing_config {
    mode = "PassThrough"
  }

  depends_on = [aws_iam_role_policy.reindex, aws_iam_role_policy.reindex_pull, aws_iam_role_policy.reindex_upstream_credentials]
}

# EventBridge invokes the indexer asynchronously: Lambda retries a failed event twice, for up
# to six hours, then hands it to the dead-letter queue (the daily reconcile repairs it anyway).
resource "aws_lambda_function_event_invoke_config" "reindex" {
  function_name                = aws_lambda_function.reindex.function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 21600
}
