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
  description = "Where the manifest, the package list, the wheel lists, the SBOM and (AMI) the OpenSCAP results are written."
}

variable "scap_content_dir" {
  type        = string
  default     = ".cache/scap/0.1.76"
  description = "ComplianceAsCode data streams from Debian's ssg-* packages (tools/scap-content.sh writes them; the AMI's scan reads one)."
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
  # The OpenSCAP scan before the seal (packer/scripts/scap-scan.sh): the AMI
  # is scored against CIS Ubuntu 24.04 Level 1 Server here, at the bake. The
  # qcow2's scan (ANSSI BP-028 intermediary, the same script) runs in CI on an
  # instance of the baked image instead (harness/scap.py): an instance is what
  # ships, and CI cannot afford a second scan in the bake
  # (docs/adr/0020-openscap-anssi-bp28.md).
  scap = {
    "amazon-ebs" = {
      content   = "ssg-ubuntu2404-ds.xml"
      tailoring = "compliance/cis-ubuntu2404-level1-server.xml"
      profile   = "xccdf_com.supermegabank_profile_cis_level1_server_api"
    }
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

  # Every available update, before the roles configure anything: an instance
  # starts with the mirror's packages of the bake's day, not the base image's
  # (docs/adr/0019-patched-at-bake.md). inventory.sh checks that nothing is
  # left upgradable just before the seal.
  provisioner "shell" {
    execute_command = "sudo -S sh -c '{{ .Vars }} {{ .Path }}'"
    script          = "packer/scripts/upgrade.sh"
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

  # What is in the image, shipped beside it and inside it: the package
  # manifest (dpkg), the wheels (pip freeze; the wheelhouse with SHA-256s) and
  # a CycloneDX SBOM made from them on the controller. inventory.sh fails the
  # build if any package is still upgradable.
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
    source      = "/tmp/image-wheelhouse.txt"
    destination = "${var.artifacts_dir}/image-wheelhouse.txt"
  }

  provisioner "file" {
    direction   = "download"
    source      = "/tmp/image-build-identity.json"
    destination = "${var.artifacts_dir}/image-build-identity.json"
  }

  provisioner "shell-local" {
    inline = [
      "python3 packer/scripts/sbom.py ${var.artifacts_dir}/image-packages.txt ${var.artifacts_dir}/image-wheelhouse.txt ${var.artifacts_dir}/image-sbom.cdx.json --revision ${var.git_revision} > ${var.artifacts_dir}/image-sbom.sha256",
    ]
  }

  # (the package list is still in the machine's /tmp, where inventory.sh wrote it)
  provisioner "file" {
    source      = "${var.artifacts_dir}/image-sbom.cdx.json"
    destination = "/tmp/image-sbom.cdx.json"
    generated   = true # made during the build (above)
  }

  provisioner "shell" {
    execute_command = "sudo -S sh -c '{{ .Vars }} {{ .Path }}'"
    inline = [
      "install -d -m 0755 /usr/share/supermega-api",
      "install -m 0644 /tmp/image-packages.txt /usr/share/supermega-api/packages.txt",
      "install -m 0644 /tmp/image-sbom.cdx.json /usr/share/supermega-api/sbom.cdx.json",
    ]
  }

  # The AMI's benchmark, before its seal: the content from Debian's ssg-*
  # packages (packer/build-ami.sh fetches it first: tools/scap-content.sh),
  # the waivers in the tailoring file, results beside the AMI; an unwaived
  # failure fails the build. The same script scans the qcow2's instance in
  # CI with the ANSSI profile.
  provisioner "file" {
    only        = ["amazon-ebs.ubuntu"]
    sources     = ["${var.scap_content_dir}/${local.scap["amazon-ebs"].content}", local.scap["amazon-ebs"].tailoring]
    destination = "/tmp/"
  }

  provisioner "shell" {
    only            = ["amazon-ebs.ubuntu"]
    execute_command = "sudo -S sh -c '{{ .Vars }} {{ .Path }}'"
    environment_vars = [
      "SCAP_CONTENT=/tmp/${local.scap["amazon-ebs"].content}",
      "SCAP_TAILORING=/tmp/${basename(local.scap["amazon-ebs"].tailoring)}",
      "SCAP_PROFILE=${local.scap["amazon-ebs"].profile}",
      "SCAP_OUT=/tmp/scap",
      "SCAP_REMOVE_SCANNER=yes",
    ]
    script = "packer/scripts/scap-scan.sh"
  }

  provisioner "file" {
    only        = ["amazon-ebs.ubuntu"]
    direction   = "download"
    source      = "/tmp/scap/"
    destination = "${var.artifacts_dir}/scap-ami/"
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

  post-processors {
    post-processor "manifest" {
      output     = "${var.artifacts_dir}/packer-manifest.json"
      strip_path = false
      custom_data = {
        git_revision = var.git_revision
        image_name   = local.image_name
      }
    }

    # The AMI's SBOM and package manifest as S3 objects named by the AMI's
    # id, and their digest and place as the AMI's tags: "which images carry
    # it?" is answered from the bucket (docs/adr/0019-patched-at-bake.md).
    post-processor "shell-local" {
      only = ["amazon-ebs.ubuntu"]
      environment_vars = [
        "MANIFEST=${var.artifacts_dir}/packer-manifest.json",
        "SBOM=${var.artifacts_dir}/image-sbom.cdx.json",
        "PACKAGES=${var.artifacts_dir}/image-packages.txt",
        "BUCKET=${var.aws_sbom_bucket}",
        "REGION=${var.aws_region}",
      ]
      script = "packer/scripts/publish-sbom.sh"
    }
  }
}
