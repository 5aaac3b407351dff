# Where the reference module (amancevice/serverless-pypi, v7) has a variable for the same
# concept, this module uses its name: api_id, api_execution_arn, api_root_resource_id,
# api_authorization_type, api_authorizer_id, event_rule_name, iam_role_name,
# lambda_api_fallback_index_url, lambda_api_function_name, lambda_reindex_function_name,
# log_group_*_retention_in_days, s3_bucket_name, s3_presigned_url_ttl.

# -- naming ------------------------------------------------------------------------------------

variable "name" {
  description = "Prefix of the names of everything this module creates, unless a more specific *_name variable is set."
  type        = string
  default     = "serverless-pypi"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", var.name))
    error_message = "name: 1-40 letters, digits, '-' or '_' (it prefixes function, role and queue names)."
  }
}

variable "tags" {
  description = "Tags for every resource that takes tags."
  type        = map(string)
  default     = {}
}

# -- the front ---------------------------------------------------------------------------------

variable "front" {
  description = "What answers HTTPS: \"http_api\" (a new API Gateway HTTP API), \"function_url\" (a Lambda function URL, the cheapest), or \"rest_api\" (routes on a REST API you bring, as the reference module's v7 does: set api_id, api_execution_arn and api_root_resource_id)."
  type        = string
  default     = "http_api"

  validation {
    condition     = contains(["http_api", "function_url", "rest_api"], var.front)
    error_message = "front must be \"http_api\", \"function_url\" or \"rest_api\"."
  }
}

variable "api_name" {
  description = "Name of the HTTP API (front = \"http_api\"). Default: var.name."
  type        = string
  default     = null
}

variable "api_throttling_burst_limit" {
  description = "HTTP API (front = \"http_api\"): burst limit of requests, a ceiling on what a runaway client can cost."
  type        = number
  default     = 500
}

variable "api_throttling_rate_limit" {
  description = "HTTP API (front = \"http_api\"): steady-state requests per second."
  type        = number
  default     = 200
}

variable "api_id" {
  description = "front = \"rest_api\": ID of your REST API (aws_api_gateway_rest_api.id). Its binary_media_types must include \"*/*\" (see README)."
  type        = string
  default     = null
}

variable "api_execution_arn" {
  description = "front = \"rest_api\": execution ARN of your REST API (aws_api_gateway_rest_api.execution_arn)."
  type        = string
  default     = null
}

variable "api_root_resource_id" {
  description = "front = \"rest_api\": the resource the index hangs from, usually aws_api_gateway_rest_api.root_resource_id; the module adds ANY on it and on a {package+} child."
  type        = string
  default     = null
}

variable "api_authorization_type" {
  description = "front = \"rest_api\": authorization of the module's methods (NONE, CUSTOM, AWS_IAM, COGNITO_USER_POOLS). The index checks its own tokens, so NONE is the usual choice."
  type        = string
  default     = "NONE"

  validation {
    condition     = contains(["NONE", "CUSTOM", "AWS_IAM", "COGNITO_USER_POOLS"], var.api_authorization_type)
    error_message = "api_authorization_type must be NONE, CUSTOM, AWS_IAM or COGNITO_USER_POOLS."
  }
}

variable "api_authorizer_id" {
  description = "front = \"rest_api\": authorizer of the module's methods when api_authorization_type is CUSTOM or COGNITO_USER_POOLS."
  type        = string
  default     = null
}

variable "api_stage_name" {
  description = "front = \"rest_api\": the stage your deployment uses; it is the index root (https://<api>/<stage>/). Used for the index_url output only."
  type        = string
  default     = "simple"
}

# -- the bucket --------------------------------------------------------------------------------

variable "s3_bucket_name" {
  description = "Name of the bucket of packages (created by the module)."
  type        = string
}

variable "s3_prefix" {
  description = "Key prefix of the index inside the bucket (S3_PREFIX); empty: the whole bucket, as the reference module lays it out."
  type        = string
  default     = ""

  validation {
    condition     = !can(regex("[*?\\\\]", var.s3_prefix))
    error_message = "s3_prefix may not contain '*', '?' or '\\' (they are wildcards in IAM and EventBridge patterns)."
  }
}

variable "s3_bucket_force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds packages."
  type        = bool
  default     = false
}

variable "s3_bucket_versioning" {
  description = "Keep earlier versions of every object, so a deleted or overwritten package can be restored."
  type        = bool
  default     = true
}

variable "s3_noncurrent_version_expiration_days" {
  description = "With versioning on: days after which earlier versions are deleted (the index rewrites its own JSON files often)."
  type        = number
  default     = 90
}

variable "s3_presigned_url_ttl" {
  description = "Lifetime in seconds of the presigned S3 URLs downloads are redirected to (S3_PRESIGNED_URL_TTL)."
  type        = number
  default     = 900

  validation {
    condition     = var.s3_presigned_url_ttl >= 1 && var.s3_presigned_url_ttl <= 604800
    error_message = "s3_presigned_url_ttl must be between 1 and 604800 seconds (S3's limit for SigV4)."
  }
}

# -- the index ---------------------------------------------------------------------------------

variable "lambda_api_fallback_index_url" {
  description = "Where requests for projects the index does not have are redirected (FALLBACK_INDEX_URL), e.g. https://pypi.org/simple/. Null: answer 404. The same as upstream_index_url with upstream_mode = \"redirect\"; set one of the two."
  type        = string
  default     = null

  validation {
    condition     = var.lambda_api_fallback_index_url == null || can(regex("^https?://", var.lambda_api_fallback_index_url))
    error_message = "lambda_api_fallback_index_url must be an http(s) URL."
  }
}

variable "private_projects" {
  description = "Glob patterns of project names served from the bucket only, never looked up on the upstream or fallback index (PRIVATE_PROJECTS), e.g. [\"acme-*\"]: protects against dependency confusion."
  type        = list(string)
  default     = []
}

# -- the upstream (docs/upstream.md) -------------------------------------------------------------

variable "upstream_index_url" {
  description = "The upstream simple index (UPSTREAM_INDEX_URL), e.g. https://pypi.org/simple/: projects the bucket does not have are served from it, private ones never. Empty: no upstream. Credentials go in upstream_credentials_secret_arn, never in the URL."
  type        = string
  default     = ""

  validation {
    condition     = var.upstream_index_url == "" || can(regex("^https?://[^/@\\s]+(/\\S*)?$", var.upstream_index_url))
    error_message = "upstream_index_url must be an http(s) URL without credentials (put them in a Secrets Manager secret: upstream_credentials_secret_arn)."
  }
}

variable "upstream_mode" {
  description = "How the upstream is used (UPSTREAM_MODE): \"redirect\" (302 to the upstream, as lambda_api_fallback_index_url), \"proxy\" (pages served by the index, downloads redirected to the upstream) or \"mirror\" (as proxy, and files are copied into the bucket on first use and served from it after)."
  type        = string
  default     = "mirror"

  validation {
    condition     = contains(["redirect", "proxy", "mirror"], var.upstream_mode)
    error_message = "upstream_mode must be \"redirect\", \"proxy\" or \"mirror\"."
  }
}

variable "upstream_ttl" {
  description = "Seconds a cached upstream page is served before it is revalidated with a conditional request (UPSTREAM_TTL)."
  type        = number
  default     = 300

  validation {
    condition     = var.upstream_ttl >= 0 && floor(var.upstream_ttl) == var.upstream_ttl
    error_message = "upstream_ttl must be a whole number of seconds, 0 or more."
  }
}

variable "upstream_credentials_secret_arn" {
  description = "ARN of a Secrets Manager secret holding the upstream's Basic credentials as JSON {\"username\": ..., \"password\": ...} (UPSTREAM_CREDENTIALS_SECRET); the functions that talk to the upstream may read this one secret. Empty: the upstream is public."
  type        = string
  default     = ""

  validation {
    condition     = var.upstream_credentials_secret_arn == "" || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.upstream_credentials_secret_arn))
    error_message = "upstream_credentials_secret_arn must be the ARN of a Secrets Manager secret (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<suffix>)."
  }
}

variable "upstream_pull_queue_name" {
  description = "upstream_mode = \"mirror\": name of the SQS queue through which the API function asks the indexer to copy upstream files into the bucket. Default: \"<name>-pull\"."
  type        = string
  default     = null
}

variable "upstream_pull_batch_size" {
  description = "upstream_mode = \"mirror\": copy requests the indexer takes per invocation. Each copy streams one file (up to gigabytes) within the indexer's timeout, so keep it small."
  type        = number
  default     = 1

  validation {
    condition     = var.upstream_pull_batch_size >= 1 && var.upstream_pull_batch_size <= 10
    error_message = "upstream_pull_batch_size must be between 1 and 10."
  }
}

variable "upstream_pull_maximum_concurrency" {
  description = "upstream_mode = \"mirror\": most indexer invocations copying at once, a ceiling on what a burst of first downloads can cost (Lambda's SQS maximum concurrency, 2-1000; at most lambda_reindex_reserved_concurrency when that is set)."
  type        = number
  default     = 5

  validation {
    condition     = var.upstream_pull_maximum_concurrency >= 2 && var.upstream_pull_maximum_concurrency <= 1000
    error_message = "upstream_pull_maximum_concurrency must be between 2 and 1000 (Lambda's limits for SQS event sources)."
  }
}

variable "cache_control" {
  description = "Cache-Control of index pages (CACHE_CONTROL). Null: \"max-age=0, must-revalidate\", so new uploads are seen at once."
  type        = string
  default     = null
}

variable "require_auth_for_read" {
  description = "Reads need a token too (REQUIRE_AUTH_FOR_READ); uploads always do."
  type        = bool
  default     = false
}

variable "log_requests" {
  description = "A log line per request of the API function (LOG_REQUESTS); off, only failures are logged."
  type        = bool
  default     = false
}

variable "max_upload_size" {
  description = "Largest upload accepted, bytes (MAX_UPLOAD_SIZE). Whatever this says, a request through Lambda carries at most ~4.4 MiB of file; larger files go straight to S3 with `serverless-pypi publish`."
  type        = number
  default     = null
}

variable "upload_session_ttl" {
  description = "Seconds an Upload 2.0 (PEP 694) session lives without being extended (UPLOAD_SESSION_TTL); extended, a session lives at most 7 days from its creation."
  type        = number
  default     = 86400

  validation {
    condition     = var.upload_session_ttl >= 60 && var.upload_session_ttl <= 604800
    error_message = "upload_session_ttl must be between 60 and 604800 seconds (7 days, the most a session lives)."
  }
}

variable "upload_session_max_file_size" {
  description = "The largest file, in bytes, an Upload 2.0 session takes (UPLOAD_SESSION_MAX_FILE_SIZE; null: 5 GiB). Not bounded by max_upload_size, which bounds legacy uploads; at most 5 TiB, S3's limit. The API function reads a file once to verify it, within its timeout."
  type        = number
  default     = null

  validation {
    condition     = var.upload_session_max_file_size == null ? true : (var.upload_session_max_file_size >= 1 && var.upload_session_max_file_size <= 5497558138880)
    error_message = "upload_session_max_file_size must be between 1 byte and 5 TiB (5497558138880)."
  }
}

# -- the functions -----------------------------------------------------------------------------

variable "lambda_package_path" {
  description = "The zip both functions run, built by `make lambda`. Default: dist/lambda.zip of this repository."
  type        = string
  default     = null
}

variable "lambda_api_function_name" {
  description = "Name of the function that answers the index API. Default: \"<name>-api\"."
  type        = string
  default     = null
}

variable "lambda_api_description" {
  description = "Description of the API function."
  type        = string
  default     = "serverless-pypi: the package index API (PEP 503/691 pages, downloads, uploads)"
}

variable "lambda_api_memory_size" {
  description = "Memory of the API function, MB (CPU grows with it; 512 keeps cold starts short)."
  type        = number
  default     = 512
}

variable "lambda_api_timeout" {
  description = "Timeout of the API function, seconds (API Gateway gives up after 29-30 s anyway)."
  type        = number
  default     = 30
}

variable "lambda_api_reserved_concurrency" {
  description = "Reserved concurrency of the API function; -1: none (new accounts cannot reserve any)."
  type        = number
  default     = -1
}

variable "lambda_reindex_function_name" {
  description = "Name of the function that keeps derived data current. Default: \"<name>-reindex\"."
  type        = string
  default     = null
}

variable "lambda_reindex_description" {
  description = "Description of the indexer function."
  type        = string
  default     = "serverless-pypi: indexes distributions on S3 events, reconciles the whole bucket on a schedule"
}

variable "lambda_reindex_memory_size" {
  description = "Memory of the indexer function, MB (it hashes and opens distributions)."
  type        = number
  default     = 1024
}

variable "lambda_reindex_timeout" {
  description = "Timeout of the indexer function, seconds; a full reindex of a large bucket needs minutes."
  type        = number
  default     = 900
}

variable "lambda_reindex_reserved_concurrency" {
  description = "Reserved concurrency of the indexer; -1: none. Writes are compare-and-swap, so concurrent indexers are safe."
  type        = number
  default     = -1
}

variable "iam_role_name" {
  description = "Prefix of the two IAM roles: \"<iam_role_name>-api\" and \"<iam_role_name>-reindex\" (each function gets only what it uses). Default: var.name."
  type        = string
  default     = null
}

variable "iam_role_permissions_boundary" {
  description = "ARN of a permissions boundary for both roles, if your organisation requires one."
  type        = string
  default     = null
}

variable "log_group_api_retention_in_days" {
  description = "Retention of the API function's logs (and the HTTP API's access log)."
  type        = number
  default     = 30
}

variable "log_group_reindex_retention_in_days" {
  description = "Retention of the indexer's logs."
  type        = number
  default     = 30
}

# -- events ------------------------------------------------------------------------------------

variable "event_rule_name" {
  description = "Name of the EventBridge rule that sends the bucket's object events to the indexer. Default: \"<name>-s3-events\"."
  type        = string
  default     = null
}

variable "reindex_schedule_expression" {
  description = "When the indexer reconciles the whole bucket (repairs whatever a lost event left behind); null: never."
  type        = string
  default     = "rate(1 day)"
}

variable "dlq_name" {
  description = "Name of the SQS dead-letter queue of events the indexer could not process. Default: \"<name>-reindex-dlq\"."
  type        = string
  default     = null
}

variable "dlq_alarm_actions" {
  description = "ARNs (e.g. an SNS topic) notified when the dead-letter queue is not empty."
  type        = list(string)
  default     = []
}
