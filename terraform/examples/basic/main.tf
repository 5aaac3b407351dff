# A complete deployment: `make lambda` at the repository root, then here
#   terraform init && terraform apply -var bucket_name=acme-pypi
# and configure clients with the index_url output (see README.md and clients/).

module "pypi" {
  source = "../.."

  s3_bucket_name = var.bucket_name
  front          = var.front

  # One index URL for every dependency: projects the bucket does not have come from PyPI,
  # their files copied into the bucket on first use (mirror mode: installs keep working when
  # PyPI is down); published and private projects never come from PyPI.
  upstream_index_url = "https://pypi.org/simple/"
  upstream_mode      = var.upstream_mode
  private_projects   = var.private_projects
}

output "index_url" {
  description = "pip/uv/poetry/pdm index URL, and the upload URL for twine and `uv publish`."
  value       = module.pypi.index_url
}

output "store_url" {
  description = "--store argument for `serverless-pypi token|publish|reindex`."
  value       = module.pypi.store_url
}

output "dlq_url" {
  description = "Events the indexer could not process."
  value       = module.pypi.dlq_url
}
