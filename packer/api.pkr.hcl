# The SuperMega Bank Customer Account API image: one build, two sources.
#
#   qemu.local         a local qcow2 (laptops, CI): from the Ubuntu 24.04 cloud
#                      image by default, or any cloud-style base (CI here uses
#                      the local Debian 12 base from packer/base-image)
#   amazon-ebs.ubuntu  an AMI from Canonical's Ubuntu 24.04 (aws.pkr.hcl)
#
# Both run the one playbook (ansible/site.yml), then the one seal script
# (scripts/seal.sh) so every instance gets its own identity; what differs per
# source is a parameter (source.type), checked statically by
# testing/static/test_packer.py. Build with `make image` (qemu, here) or see
# README.md "Build the AMI". Paths are relative to the repository root.

variable "git_revision" {
  type        = string
  default     = "unknown"
  description = "Git revision baked into names and the manifest (make passes it)."
}

variable "base_image_url" {
  type        = string
  default     = "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img"
  description = "qemu: base cloud image (URL or local path)."
}

variable "base_image_checksum" {
  type        = string
  default     = "file:https://cloud-images.ubuntu.com/noble/current/SHA256SUMS"
  description = "qemu: checksum of the base image (sha256:<hex> or file:<url>)."
}

variable "accelerator" {
  type        = string
  default     = "kvm"
  description = "qemu: kvm where it works, tcg (software emulation) where it does not."

  validation {
    condition     = contains(["kvm", "tcg"], var.accelerator)
    error_message = "The accelerator value must be kvm or tcg."
  }
}

variable "qemu_cpu" {
  type        = string
  default     = "host"
  description = "qemu: CPU model (host under kvm; qemu64 is fastest under tcg)."
}

variable "memory" {
  type        = number
  default     = 2048
  description = "qemu: build VM memory (MiB)."

  validation {
    condition     = var.memory >= 1024
    error_message = "The memory value must be at least 1024 (MiB): the converge runs apt and pip."
  }
}

variable "cpus" {
  type        = number
  default     = 2
  description = "qemu: build VM CPUs."

  validation {
    condition     = var.cpus >= 1
    error_message = "The cpus value must be at least 1."
  }
}

variable "disk_size" {
  type        = string
  default     = "8G"
  description = "qemu: image disk size (cloud-init grows the root partition to it)."

  validation {
    condition     = length(var.disk_size) > 1 && contains(["M", "G"], substr(var.disk_size, -1, 1)) && length(trim(substr(var.disk_size, 0, length(var.disk_size) - 1), "0123456789")) == 0
    error_message = "The disk_size value must be a size in M or G, like 8G."
  }
}

variable "disk_compression" {
  type        = bool
  default     = true
  description = "qemu: compress the qcow2 (smaller to ship; CI turns it off: it only costs time there)."
}

variable "disk_cache" {
  type        = string
  default     = "writeback"
  description = "qemu: the build disk's cache mode (unsafe: no flushes, for a disk that is thrown away if the build fails)."

  validation {
    condition     = contains(["writeback", "writethrough", "none", "unsafe", "directsync"], var.disk_cache)
    error_message = "The disk_cache value must be one of qemu's cache modes: writeback, writethrough, none, unsafe, directsync."
  }
}

variable "output_dir" {
  type        = string
  default     = "build/image"
  description = "qemu: where the image is written (must not exist)."
}

variable "build_ssh_key" {
  type        = string
  default     = "build/packer-seed/build_key"
  description = "qemu: private key of the temporary build user (made per build by make)."
}

variable "seed_dir" {
  type        = string
  default     = "build/packer-seed/cidata"
  description = "qemu: NoCloud seed (user-data, meta-data) creating the build user."
}

variable "artifacts_dir" {
  type        = string
  default     = "build"
  description = "Where the manifest, package list and wheel list are written."
}

locals {
  # cloud-init's datasource per source: an instance probes only its own
  # (instance_boot role; a qcow2's seed is NoCloud, an AMI's is EC2).
  cloud_init_datasources = {
    "qemu"       = ["NoCloud", "None"]
    "amazon-ebs" = ["Ec2", "None"]
  }
  # cloud-init's local stage renders the network from the datasource: the
  # AMI's network comes from it (per instance); the qcow2's base image turns
  # cloud-init's network configuration off (systemd-networkd's DHCP), so its
  # instances skip that stage (instance_boot_local_stage; the role refuses
  # false where cloud-init still configures the network).
  cloud_init_local_stage = {
    "qemu"       = false
    "amazon-ebs" = true
  }
  # The initramfs's kernel modules: the qcow2's instances boot on the
  # build's own disk hardware (virtio), so its initramfs holds only those
  # drivers (dep, less than half the size, a shorter boot); an AMI's instance
  # type may change (Xen or Nitro: NVMe, ENA), so it keeps most.
  initramfs_modules = {
    "qemu"       = "dep"
    "amazon-ebs" = "most"
  }
  timestamp  = formatdate("YYYYMMDDhhmmss", timestamp())
  image_name = "supermega-api-${local.timestamp}-${var.git_revision}"
}

source "qemu" "local" {
  iso_url          = var.base_image_url
  iso_checksum     = var.base_image_checksum
  disk_image       = true
  use_backing_file = false
  format           = "qcow2"
  disk_compression = var.disk_compression
  disk_cache       = var.disk_cache
  disk_size        = var.disk_size
  disk_interface   = "virtio"
  net_device       = "virtio-net"
  accelerator      = var.accelerator
  memory           = var.memory
  cpus             = var.cpus
  headless         = true
  output_directory = var.output_dir
  vm_name          = "supermega-api.qcow2"

  # The build user comes from a NoCloud seed made for this build only.
  cd_files = ["${var.seed_dir}/user-data", "${var.seed_dir}/meta-data"]
  cd_label = "cidata"

  # SSH forwarded on loopback only, a CPU model that suits the accelerator.
  # (Packer 1.6 insists on its VNC console: it listens on 127.0.0.1 only.)
  vnc_bind_address = "127.0.0.1"
  qemuargs = [
    ["-cpu", var.qemu_cpu],
    ["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ["-device", "virtio-net,netdev=user.0"],
    ["-serial", "file:${var.output_dir}-console.log"],
  ]

  communicator              = "ssh"
  ssh_username              = "packer"
  ssh_private_key_file      = var.build_ssh_key
  ssh_timeout               = "15m"
  ssh_clear_authorized_keys = true
  # A plain power-off: the seal's last part runs as the machine stops
  # (seal-final.service), exactly as when EC2 stops the AMI's build instance.
  shutdown_command = "sudo systemctl poweroff"
  shutdown_timeout = "10m"
}

build {
  name    = "supermega-api"
  sources = ["source.qemu.local", "source.amazon-ebs.ubuntu"]

  # Cloud images boot with cloud-init still running (and apt locked): wait.
  provisioner "shell" {
    script = "packer/scripts/wait-cloud-init.sh"
  }

  # The one playbook, exactly as Vagrant and Molecule run it. What differs per
  # source is a parameter: the AMI's clock comes from the Amazon Time Sync
  # Service, which a private subnet reaches too (link-local), not from the
  # public pool; and each source's cloud-init probes only its own datasource
  # (and runs its local stage only where that stage configures the network).
  provisioner "ansible" {
    playbook_file = "ansible/site.yml"
    groups        = ["api"]
    use_proxy     = false
    extra_arguments = [
      "--extra-vars",
      jsonencode({
        hardening_time_sync_servers     = source.type == "amazon-ebs" ? var.aws_time_sync_servers : []
        instance_boot_datasources       = local.cloud_init_datasources[source.type]
        instance_boot_local_stage       = local.cloud_init_local_stage[source.type]
        instance_boot_initramfs_modules = local.initramfs_modules[source.type]
      }),
    ]
    ansible_env_vars = [
      "ANSIBLE_CONFIG=ansible.cfg",
      # the build machine is new and reached once, through a key made for it
      "ANSIBLE_HOST_KEY_CHECKING=False",
      "TIMING_STAGE=image",
    ]
  }

  # What is in the image, shipped beside it.
  provisioner "shell" {
    execute_command = "sudo -S sh -c '{{ .Vars }} {{ .Path }}'"
    script          = "packer/scripts/inventory.sh"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/tmp/image-packages.txt"
    destination = "${var.artifacts_dir}/image-packages.txt"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/tmp/image-wheels.txt"
    destination = "${var.artifacts_dir}/image-wheels.txt"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/tmp/image-build-identity.json"
    destination = "${var.artifacts_dir}/image-build-identity.json"
  }

  # Seal, the last step of every source: no identity, no build key, no logs,
  # no apt lists. The qemu build's user exists only for the build and goes;
  # on EC2 `ubuntu` stays (cloud-init gives it the operator's key at launch)
  # with an empty authorized_keys.
  provisioner "shell" {
    execute_command  = "sudo -S sh -c '{{ .Vars }} {{ .Path }}'"
    environment_vars = ["SEAL_REMOVE_BUILD_USER=${source.type == "qemu" ? "yes" : "no"}"]
    script           = "packer/scripts/seal.sh"
  }

  post-processor "manifest" {
    output     = "${var.artifacts_dir}/packer-manifest.json"
    strip_path = false
    custom_data = {
      git_revision = var.git_revision
      image_name   = local.image_name
    }
  }
}
