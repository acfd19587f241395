# One follower account's side (the seed's "kubed-follower"): a role the management account's kubed-master
# role may assume, allowed to find and describe this account's EKS clusters. Apply once per follower account.
# Same policies as ../../follower-trust-policy.json and ../../eks-read-policy.json. What the role may do
# inside the cluster is Kubernetes RBAC (manifests/follower), granted through aws-auth or an access entry.

# hashicorp/aws 6.x (data.aws_region's `region`, new in 6.0, replaces its deprecated `name`), and the Terraform
# it supports. Policies are attached with aws_iam_role_policy_attachment: aws_iam_role's inline_policy and
# managed_policy_arns arguments are deprecated (`make lint` checks both, parsing this file).
terraform {
  required_version = ">= 1.5.7"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}

variable "mgmt_account_id" {
  description = "AWS account id of the management cluster (where the kubed-master role lives)"
  type        = string
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "kubed_follower_trust" {
  statement {
    sid     = "KubedFollowerAssume"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${var.mgmt_account_id}:role/kubed-master"]
    }
  }
}

data "aws_iam_policy_document" "kubed_follower" {
  statement {
    sid       = "KubedEksList"
    effect    = "Allow"
    actions   = ["eks:ListClusters"]
    resources = ["*"] # ListClusters has no resource-level permission
  }
  statement {
    sid       = "KubedEksDescribe"
    effect    = "Allow"
    actions   = ["eks:DescribeCluster"]
    resources = ["arn:${data.aws_partition.current.partition}:eks:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:cluster/*"]
  }
}

resource "aws_iam_role" "kubed_follower" {
  name               = "kubed-follower"
  description        = "kubed-cross-sync: lets the management account's sync pod sync ConfigMaps and Secrets into this account's clusters"
  assume_role_policy = data.aws_iam_policy_document.kubed_follower_trust.json
}

resource "aws_iam_policy" "kubed_follower" {
  name   = "kubed-follower"
  policy = data.aws_iam_policy_document.kubed_follower.json
}

resource "aws_iam_role_policy_attachment" "kubed_follower" {
  role       = aws_iam_role.kubed_follower.name
  policy_arn = aws_iam_policy.kubed_follower.arn
}

output "role_arn" {
  description = "Add this role to the follower cluster's aws-auth (or an access entry): manifests/follower"
  value       = aws_iam_role.kubed_follower.arn
}
