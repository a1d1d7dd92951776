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

variable "aws_ssh_interface" {
  type        = string
  default     = "public_ip"
  description = "How Packer and Ansible reach the build instance: public_ip, or private_ip from a build host inside the VPC (a private aws_subnet_id), or session_manager (no inbound SSH at all; needs aws_iam_instance_profile with SSM)."

  validation {
    condition     = contains(["public_ip", "private_ip", "session_manager"], var.aws_ssh_interface)
    error_message = "The aws_ssh_interface value must be public_ip, private_ip or session_manager."
  }
}

variable "aws_build_source_cidrs" {
  type        = list(string)
  default     = []
  description = "CIDRs allowed to reach the build instance's SSH through the temporary security group (with aws_ssh_interface=private_ip: the build host's own address in the VPC). Empty: only this build host's public address, looked up by Packer. Never the whole internet."

  validation {
    condition     = ! contains(var.aws_build_source_cidrs, "0.0.0.0/0") && ! contains(var.aws_build_source_cidrs, "::/0")
    error_message = "The aws_build_source_cidrs value must not open the build instance to the whole internet."
  }
}

variable "aws_iam_instance_profile" {
  type        = string
  default     = null
  description = "Instance profile of the build instance (needed for ssh_interface session_manager)."
}

variable "aws_time_sync_servers" {
  type        = list(string)
  default     = ["169.254.169.123"]
  description = "The AMI's NTP servers: the Amazon Time Sync Service (link-local, reachable from private subnets)."
}

variable "aws_kms_key_id" {
  type        = string
  default     = null
  description = "KMS key for the AMI's EBS encryption (null: the account's default EBS key)."
}

variable "aws_sbom_bucket" {
  type        = string
  default     = ""
  description = "S3 bucket the AMI's SBOM and package manifest go to (sboms/<ami-id>/), tagged on the AMI. Required for an AMI build (the scripts refuse an empty one); unused by the qcow2."
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

  # The build instance is reachable only from the build host (or from inside
  # the VPC), never from the internet at large.
  ssh_interface               = var.aws_ssh_interface
  associate_public_ip_address = var.aws_ssh_interface == "public_ip"
  iam_instance_profile        = var.aws_iam_instance_profile
  # (the plugin uses the CIDRs when given, else this host's public address;
  # session_manager makes no SSH rule at all)
  temporary_security_group_source_cidrs     = length(var.aws_build_source_cidrs) > 0 ? var.aws_build_source_cidrs : null
  temporary_security_group_source_public_ip = true

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
  # Packer removes its temporary key once provisioning ends; the seal empties
  # authorized_keys again at the build's shutdown (scripts/seal.sh).
  ssh_clear_authorized_keys = true

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
