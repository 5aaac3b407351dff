# The upstream (docs/upstream.md). With upstream_index_url set, the API function serves the
# projects the bucket does not have from the upstream's pages, cached in the bucket under
# .serverless-pypi/upstream/pages/ (and their core metadata under .../metadata/). In mirror
# mode the first download of an upstream file is redirected to the upstream and the API
# function asks, through an SQS queue, for a copy: the indexer streams the file from the
# upstream into .serverless-pypi/upstream/files/ (multipart, checked against the upstream's
# sha256 before it completes), and later downloads are served from the bucket.
#
# Least privilege of the split (lambda.tf has the S3 grants):
#   API      sends to the pull queue; reads the credentials secret; writes cached pages and
#            metadata; may never write a pulled-through copy (an explicit Deny), so a request
#            can at most ask for a copy, never plant one
#   indexer  receives from and deletes on the pull queue; reads the credentials secret;
#            writes the copies (and aborts its own unfinished multipart uploads)

# -- the pull queue (mirror mode) ------------------------------------------------------------------

resource "aws_sqs_queue" "pull" {
  count = local.upstream_mirror ? 1 : 0
  name  = local.pull_queue_name
  # Lambda's advice for SQS event sources: six times the function's timeout, so a message a
  # copy is still working on is not handed to a second invocation (12 hours at most)
  visibility_timeout_seconds = min(6 * var.lambda_reindex_timeout, 43200)
  # a request not served within a day is moot: the next download asks again
  message_retention_seconds = 86400
  sqs_managed_sse_enabled   = true
  tags                      = var.tags

  # a copy that fails three times (the upstream down, a digest mismatch is not retried: the
  # indexer drops it) waits in the indexer's dead-letter queue, whose alarm fires
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = 3
  })
}

data "aws_iam_policy_document" "pull" {
  count = local.upstream_mirror ? 1 : 0

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.pull[0].arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "pull" {
  count     = local.upstream_mirror ? 1 : 0
  queue_url = aws_sqs_queue.pull[0].id
  policy    = data.aws_iam_policy_document.pull[0].json
}

# The indexer answers an SQS batch with batchItemFailures: only the copies that failed come
# back. One copy per invocation by default (a copy may take minutes), and at most
# upstream_pull_maximum_concurrency invocations at once, whatever a burst of downloads asks.
resource "aws_lambda_event_source_mapping" "pull" {
  count                   = local.upstream_mirror ? 1 : 0
  event_source_arn        = aws_sqs_queue.pull[0].arn
  function_name           = aws_lambda_function.reindex.arn
  batch_size              = var.upstream_pull_batch_size
  function_response_types = ["ReportBatchItemFailures"]
  tags                    = var.tags

  scaling_config {
    maximum_concurrency = var.upstream_pull_maximum_concurrency
  }

  lifecycle {
    # a throttled batch goes back to the queue and counts as a receive: past three, into the
    # dead-letter queue, so the mapping must never ask for more than the indexer may run
    precondition {
      condition     = var.lambda_reindex_reserved_concurrency < 0 || var.upstream_pull_maximum_concurrency <= var.lambda_reindex_reserved_concurrency
      error_message = "upstream_pull_maximum_concurrency must not exceed lambda_reindex_reserved_concurrency (copies would be throttled into the dead-letter queue)."
    }
  }

  # creating the mapping checks that the role may receive from the queue
  depends_on = [aws_iam_role_policy.reindex_pull]
}

# -- grants --------------------------------------------------------------------------------------

data "aws_iam_policy_document" "api_pull" {
  count = local.upstream_mirror ? 1 : 0

  statement {
    sid       = "AskForPullThroughCopies"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.pull[0].arn]
  }
}

data "aws_iam_policy_document" "reindex_pull" {
  count = local.upstream_mirror ? 1 : 0

  # what an SQS event source needs of the function's role
  statement {
    sid       = "ReceivePullRequests"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.pull[0].arn]
  }

  # s3:PutObject on derived data (lambda.tf) covers creating, uploading and completing a
  # multipart upload; aborting one (a copy that failed its sha256 check) is its own action
  statement {
    sid       = "AbortUnfinishedCopies"
    actions   = ["s3:AbortMultipartUpload"]
    resources = [local.upstream_files_arn]
  }
}

# the one secret, to the functions that talk to the upstream: the API function (pages,
# metadata) and, in mirror mode, the indexer (copies)
data "aws_iam_policy_document" "upstream_credentials" {
  count = local.upstream_secret ? 1 : 0

  statement {
    sid       = "UpstreamCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.upstream_credentials_secret_arn]
  }
}

resource "aws_iam_role_policy" "api_pull" {
  count  = local.upstream_mirror ? 1 : 0
  name   = "serverless-pypi-api-pull"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api_pull[0].json
}

resource "aws_iam_role_policy" "reindex_pull" {
  count  = local.upstream_mirror ? 1 : 0
  name   = "serverless-pypi-reindex-pull"
  role   = aws_iam_role.reindex.id
  policy = data.aws_iam_policy_document.reindex_pull[0].json
}

resource "aws_iam_role_policy" "api_upstream_credentials" {
  count  = local.upstream_secret ? 1 : 0
  name   = "serverless-pypi-api-upstream-credentials"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.upstream_credentials[0].json
}

resource "aws_iam_role_policy" "reindex_upstream_credentials" {
  count  = local.upstream_mirror && local.upstream_secret ? 1 : 0
  name   = "serverless-pypi-reindex-upstream-credentials"
  role   = aws_iam_role.reindex.id
  policy = data.aws_iam_policy_document.upstream_credentials[0].json
}
