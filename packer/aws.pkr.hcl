# The AMI source: Canonical's latest Ubuntu 24.04 LTS, encrypted EBS, IMDSv2
# required on the build instance and on the AMI. No credentials here: the
# AWS SDK chain (environment, profile, instance role) supplies them.
# Written for modern Packer with the amazon plugin >= 1.2.1 (plugins.pkr.hcl).

variable "aws_region" {
  type        = string
  default     = "ap-southeast-2"
  description = "Region the AMI is built in."
}

variable "aws_instance_type" {
  type        = string
  default     = "t3.small"
  description = "Build instance type (any size: gunicorn sizes itself at boot)."
}

variable "aws_subnet_id" {
  type        = string
  default     = null
  description = "Subnet of the build instance (null: the default VPC)."
}

variable "aws_kms_key_id" {
  type        = string
  default     = null
  description = "KMS key for the AMI's EBS encryption (null: the account's default EBS key)."
}

variable "aws_tags" {
  type        = map(string)
  default     = {}
  description = "Extra tags for the AMI and its snapshot (cost centre, owner...)."
}

source "amazon-ebs" "ubuntu" {
  region        = var.aws_region
  instance_type = var.aws_instance_type
  subnet_id     = var.aws_subnet_id

  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["099720109477"] # Canonical
    most_recent = true
  }
  ssh_username = "ubuntu"

  ami_name        = local.image_name
  ami_description = "SuperMega Bank Customer Account API (${var.git_revision})"
  encrypt_boot    = true
  kms_key_id      = var.aws_kms_key_id

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = 8
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    encrypted             = true
    delete_on_termination = true
  }

  # IMDSv2 only: on the build instance, and on every instance of the AMI.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"

  tags = merge(var.aws_tags, {
    Name        = local.image_name
    Project     = "supermega-api"
    GitRevision = var.git_revision
    SourceAMI   = "{{ .SourceAMI }}"
  })
  run_tags = { Name = "packer-build-${local.image_name}" }
}
