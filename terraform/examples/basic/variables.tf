variable "region" {
  description = "AWS region of the index."
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "Name of the bucket of packages (globally unique)."
  type        = string
}

variable "front" {
  description = "\"http_api\", \"function_url\" or \"rest_api\" (for a REST API of your own, see ../rest-api)."
  type        = string
  default     = "http_api"
}

variable "private_projects" {
  description = "Projects that exist only here: never looked up on PyPI (dependency confusion)."
  type        = list(string)
  default     = []
}

variable "upstream_mode" {
  description = "\"mirror\" (PyPI's files copied into the bucket), \"proxy\" (PyPI's pages, downloads from PyPI) or \"redirect\" (clients sent to PyPI); see docs/upstream.md."
  type        = string
  default     = "mirror"
}
