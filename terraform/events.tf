# S3 -> EventBridge -> indexer. S3 events arrive at least once, maybe late, duplicated or out
# of order; the indexer looks at the bucket, not at the event, so that is harmless. What is
# lost anyway (an event dropped after its retries) is repaired by the scheduled reconcile.

resource "aws_cloudwatch_event_rule" "s3" {
  name        = local.event_rule_name
  description = "serverless-pypi: distributions created or deleted in ${var.s3_bucket_name} -> indexer"
  tags        = var.tags

  # Only distributions (<prefix><project>/<file>.whl|.tar.gz|.zip): the keys the index writes
  # itself (.serverless-pypi/*, index.html) never end that way, so its own writes do not loop
  # back into the indexer. (The handler ignores them too.)
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created", "Object Deleted"]
    detail = {
      bucket = { name = [aws_s3_bucket.pypi.id] }
      object = {
        key = [for suffix in local.distribution_suffixes : { wildcard = "${local.s3_prefix}*${suffix}" }]
      }
    }
  })
}

resource "aws_cloudwatch_event_target" "s3" {
  rule = aws_cloudwatch_event_rule.s3.name
  arn  = aws_lambda_function.reindex.arn

  # delivery to Lambda failing (throttled, deleted) for a day: keep the event in the DLQ
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}

resource "aws_lambda_permission" "s3_events" {
  statement_id  = "AllowS3EventsRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.reindex.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.s3.arn
}

# -- scheduled reconcile: a full reindex -------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "reconcile" {
  count               = var.reindex_schedule_expression == null ? 0 : 1
  name                = local.reconcile_rule_name
  description         = "serverless-pypi: reconcile the index of ${var.s3_bucket_name} with its objects"
  schedule_expression = var.reindex_schedule_expression
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "reconcile" {
  count = var.reindex_schedule_expression == null ? 0 : 1
  rule  = aws_cloudwatch_event_rule.reconcile[0].name
  arn   = aws_lambda_function.reindex.arn
  input = jsonencode(local.full_reindex_event)

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}

resource "aws_lambda_permission" "reconcile" {
  count         = var.reindex_schedule_expression == null ? 0 : 1
  statement_id  = "AllowReconcileRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.reindex.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reconcile[0].arn
}

# -- dead-letter queue -------------------------------------------------------------------------------

resource "aws_sqs_queue" "dlq" {
  name                      = local.dlq_name
  message_retention_seconds = 1209600 # 14 days, SQS's longest
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

data "aws_iam_policy_document" "dlq" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = concat([aws_cloudwatch_event_rule.s3.arn], aws_cloudwatch_event_rule.reconcile[*].arn)
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.dlq.arn]

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

resource "aws_sqs_queue_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  policy    = data.aws_iam_policy_document.dlq.json
}

resource "aws_cloudwatch_metric_alarm" "dlq" {
  alarm_name          = "${local.dlq_name}-not-empty"
  alarm_description   = "serverless-pypi: the indexer could not process some events (or, in mirror mode, copy some upstream files); they wait in ${local.dlq_name}. The scheduled reconcile repairs the index, the next download asks for a copy again; look at the indexer's logs for the cause."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.dlq_alarm_actions
  tags                = var.tags
}
