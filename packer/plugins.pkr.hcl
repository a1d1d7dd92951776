# Plugins for modern Packer (>= 1.7): `packer init packer/`.
# Kept in a file of its own: Debian's Packer 1.6.6 cannot parse
# required_plugins, so `make image` builds from the other files only
# (see packer/README.md).
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.1"
    }
    qemu = {
      source  = "github.com/hashicorp/qemu"
      version = ">= 1.0.9"
    }
    ansible = {
      source  = "github.com/hashicorp/ansible"
      version = ">= 1.1.0"
    }
  }
}
