# The management account's side (the seed's "kubed-master"): an IRSA role for the sync pod's
# ServiceAccount that may assume each follower's kubed-follower role and read EKS cluster data.
# Same policies as ../../mgmt-trust-policy.json, ../../mgmt-assume-followers-policy.json and
# ../../eks-read-policy.json; plain resources instead of the seed's terraform-aws-modules wrapper.

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

variable "cluster_oidc_issuer_url" {
  description = "OIDC issuer URL of the management EKS cluster (aws eks describe-cluster ... identity.oidc.issuer)"
  type        = string
}

variable "follower_account_ids" {
  description = "AWS account ids of the follower clusters, e.g. { mc-project = \"222222222222\" }"
  type        = map(string)
}

variable "namespace" {
  description = "Namespace of the sync pod (manifests/mgmt/base)"
  type        = string
  default     = "kubed-cross-sync"
}

variable "service_account" {
  description = "ServiceAccount of the sync pod (manifests/mgmt/base)"
  type        = string
  default     = "kubed-cross-sync"
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  oidc_provider  = replace(var.cluster_oidc_issuer_url, "https://", "")
  follower_roles = [for _, id in var.follower_account_ids : "arn:${data.aws_partition.current.partition}:iam::${id}:role/kubed-follower"]
}

data "aws_iam_policy_document" "kubed_master_trust" {
  statement {
    sid     = "KubedMasterIrsa"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/${local.oidc_provider}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_provider}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_provider}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "kubed_master" {
  statement {
    sid       = "KubedMasterAssumeFollowers"
    effect    = "Allow"
    actions   = ["sts:AssumeRole"]
    resources = local.follower_roles
  }
}

data "aws_iam_policy_document" "kubed_eks" {
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

resource "aws_iam_role" "kubed_master" {
  name               = "kubed-master"
  description        = "kubed-cross-sync: the sync pod in the management cluster (IRSA)"
  assume_role_policy = data.aws_iam_policy_document.kubed_master_trust.json
}

resource "aws_iam_policy" "kubed_master" {
  name   = "kubed-master"
  policy = data.aws_iam_policy_document.kubed_master.json
}

resource "aws_iam_policy" "kubed_eks" {
  name   = "kubed-eks"
  policy = data.aws_iam_policy_document.kubed_eks.json
}

resource "aws_iam_role_policy_attachment" "kubed_master" {
  role       = aws_iam_role.kubed_master.name
  policy_arn = aws_iam_policy.kubed_master.arn
}

resource "aws_iam_role_policy_attachment" "kubed_eks" {
  role       = aws_iam_role.kubed_master.name
  policy_arn = aws_iam_policy.kubed_eks.arn
}

output "role_arn" {
  description = "The eks.amazonaws.com/role-arn of the ServiceAccount: your overlay of manifests/mgmt/base (manifests/mgmt/example/serviceaccount-irsa.yaml)"
  value       = aws_iam_role.kubed_master.arn
}
