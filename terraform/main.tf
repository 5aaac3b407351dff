# serverless-pypi: a private Python package index on S3 + Lambda.
#
#   main.tf     names, the S3 layout, the bucket
#   lambda.tf   the two functions, their log groups and their (separate) IAM roles
#   events.tf   S3 -> EventBridge -> indexer, the scheduled reconcile, the dead-letter queue
#   front.tf    what answers HTTPS: an HTTP API, a function URL, or your REST API
#   upstream.tf the upstream: the queue of copies to pull through (mirror mode), its grants

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  lambda_api_function_name     = coalesce(var.lambda_api_function_name, "${var.name}-api")
  lambda_reindex_function_name = coalesce(var.lambda_reindex_function_name, "${var.name}-reindex")
  iam_role_name                = coalesce(var.iam_role_name, var.name)
  event_rule_name              = coalesce(var.event_rule_name, "${var.name}-s3-events")
  reconcile_rule_name          = "${var.name}-reconcile"
  dlq_name                     = coalesce(var.dlq_name, "${var.name}-reindex-dlq")
  pull_queue_name              = coalesce(var.upstream_pull_queue_name, "${var.name}-pull")
  api_name                     = coalesce(var.api_name, var.name)

  # The code: one zip (`make lambda`), two entry points (src/serverless_pypi/aws_lambda.py).
  lambda_package_path = coalesce(var.lambda_package_path, "${path.module}/../dist/lambda.zip")
  lambda_runtime      = "python3.13"
  lambda_architecture = "arm64"
  handler_api         = "serverless_pypi.aws_lambda.api_handler"
  handler_reindex     = "serverless_pypi.aws_lambda.reindex_handler"

  # The S3 layout (src/serverless_pypi/layout.py). Distributions live at <project>/<file>;
  # what the index derives itself lives under .serverless-pypi/, plus the root index.html.
  s3_prefix       = trim(var.s3_prefix, "/") == "" ? "" : "${trim(var.s3_prefix, "/")}/"
  reserved_prefix = ".serverless-pypi/"
  root_html       = "index.html"
  # The files the index serves (core/names.py: wheels, sdists, legacy .zip sdists). No key the
  # index derives ends with one of these, so matching them keeps derived data out of the events.
  distribution_suffixes = [".whl", ".tar.gz", ".zip"]

  # What the scheduled reconcile sends the indexer (serverless_pypi/events.py: a full reindex).
  full_reindex_event = { reindex = "full" }

  # Configuration of the functions (serverless_pypi/config.py, aws_lambda.py); null and empty
  # values are left out so the code's defaults apply.
  api_environment = {
    S3_BUCKET             = aws_s3_bucket.pypi.id
    S3_PREFIX             = local.s3_prefix
    S3_PRESIGNED_URL_TTL  = tostring(var.s3_presigned_url_ttl)
    FALLBACK_INDEX_URL    = var.lambda_api_fallback_index_url
    PRIVATE_PROJECTS      = join(",", var.private_projects)
    CACHE_CONTROL         = var.cache_control
    REQUIRE_AUTH_FOR_READ = var.require_auth_for_read ? "true" : "false"
    MAX_UPLOAD_SIZE       = var.max_upload_size == null ? null : tostring(var.max_upload_size)
    UPLOAD_SESSION_TTL    = tostring(var.upload_session_ttl)
    UPLOAD_SESSION_MAX_FILE_SIZE = (
      var.upload_session_max_file_size == null ? null : tostring(var.upload_session_max_file_size)
    )
    LOG_REQUESTS = var.log_requests ? "true" : "false"
    # the upstream (upstream.tf): set only with an upstream, so the code's defaults apply
    UPSTREAM_INDEX_URL          = local.upstream ? var.upstream_index_url : null
    UPSTREAM_MODE               = local.upstream ? var.upstream_mode : null
    UPSTREAM_TTL                = local.upstream ? tostring(var.upstream_ttl) : null
    UPSTREAM_CREDENTIALS_SECRET = local.upstream_secret ? var.upstream_credentials_secret_arn : null
    PULL_QUEUE_URL              = local.upstream_mirror ? aws_sqs_queue.pull[0].url : null
  }
  # the indexer also copies upstream files (mirror mode): it needs the upstream and its
  # credentials, never the queue's URL (it receives from the queue through Lambda)
  reindex_environment = {
    S3_BUCKET                   = aws_s3_bucket.pypi.id
    S3_PREFIX                   = local.s3_prefix
    UPSTREAM_INDEX_URL          = local.upstream_mirror ? var.upstream_index_url : null
    UPSTREAM_MODE               = local.upstream_mirror ? var.upstream_mode : null
    UPSTREAM_CREDENTIALS_SECRET = local.upstream_mirror && local.upstream_secret ? var.upstream_credentials_secret_arn : null
  }

  bucket_arn      = aws_s3_bucket.pypi.arn
  index_keys_arn  = "${aws_s3_bucket.pypi.arn}/${local.s3_prefix}*"
  root_html_arn   = "${aws_s3_bucket.pypi.arn}/${local.s3_prefix}${local.root_html}"
  derived_arn     = "${aws_s3_bucket.pypi.arn}/${local.s3_prefix}${local.reserved_prefix}*"
  folder_keys_arn = "${aws_s3_bucket.pypi.arn}/${local.s3_prefix}*/*"
  # Upload 2.0 sessions (index/sessions.py): documents and staged files, whose multipart
  # uploads the clients fill through presigned part URLs (signed with the API's role)
  sessions_arn = "${aws_s3_bucket.pypi.arn}/${local.s3_prefix}${local.reserved_prefix}sessions/*"

  # The upstream (upstream.tf, src/serverless_pypi/index/layout.py): cached pages and core
  # metadata, written by the API function, and pulled-through copies, written by the indexer
  # only, all under the reserved prefix no project can take.
  upstream           = var.upstream_index_url != ""
  upstream_mirror    = local.upstream && var.upstream_mode == "mirror"
  upstream_secret    = var.upstream_credentials_secret_arn != ""
  upstream_prefix    = "${local.reserved_prefix}upstream/"
  upstream_files_arn = "${aws_s3_bucket.pypi.arn}/${local.s3_prefix}${local.upstream_prefix}files/*"
}

# -- the bucket ----------------------------------------------------------------------------------

resource "aws_s3_bucket" "pypi" {
  #checkov:skip=CKV_AWS_18:Access logs would need a second bucket to secure; the API function logs every request (method, path, status) and CloudTrail data events can be enabled account-wide.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles storage cost for a cache of rebuildable artifacts; versioning (on by default) covers deletes and overwrites.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES-256) is the default encryption; SSE-KMS would add a KMS request to every download, and presigned URLs would need kms:Decrypt on the signer.
  bucket        = var.s3_bucket_name
  force_destroy = var.s3_bucket_force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "pypi" {
  bucket                  = aws_s3_bucket.pypi.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "pypi" {
  bucket = aws_s3_bucket.pypi.id

  rule {
    object_ownership = "BucketOwnerEnforced" # no ACLs: access is what IAM says
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "pypi" {
  bucket = aws_s3_bucket.pypi.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "pypi" {
  count  = var.s3_bucket_versioning ? 1 : 0
  bucket = aws_s3_bucket.pypi.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "pypi" {
  bucket = aws_s3_bucket.pypi.id

  rule {
    id     = "housekeeping"
    status = "Enabled"
    filter {}

    # also the uploads of Upload 2.0 sessions (.serverless-pypi/sessions/), which the index
    # aborts itself when a session ends: a session lives at most 7 days from its creation, and
    # its uploads start after it, so none is aborted here while its session is open (a second
    # rule of more days for that prefix would change nothing: S3 applies the shorter one)
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }

    # with versioning: earlier versions go after a while (the index rewrites its JSON often)
    dynamic "noncurrent_version_expiration" {
      for_each = var.s3_bucket_versioning ? [var.s3_noncurrent_version_expiration_days] : []

      content {
        noncurrent_days = noncurrent_version_expiration.value
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.pypi]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]

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

  statement {
    sid       = "DenyOutdatedTLS"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "pypi" {
  bucket     = aws_s3_bucket.pypi.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.pypi]
}

# Every object event goes to EventBridge, where events.tf picks the distributions out.
resource "aws_s3_bucket_notification" "pypi" {
  bucket      = aws_s3_bucket.pypi.id
  eventbridge = true
}
