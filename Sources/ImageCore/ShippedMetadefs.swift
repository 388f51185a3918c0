/// The metadata definitions imaged ships, in Glance's file format (the shape of `POST
/// /v2/metadefs/namespaces`), loaded once into a new catalog (`MetadefService.loadShippedOnce`).
/// Written for imaged: the properties Nova and Cinder read from images, flavors, servers and aggregates.
public enum ShippedMetadefs {
    /// Glance's seeded resource types: listed even before any namespace uses them.
    public static let resourceTypes = ["OS::Glance::Image", "OS::Cinder::Volume", "OS::Nova::Flavor", "OS::Nova::Server",
                                       "OS::Nova::Aggregate"]

    public static let documents: [String] = [cpuTopology, hardware, operatingSystem, secureBoot, watchdog, allocationRatios]

    static let cpuTopology = #"""
    {
      "namespace": "OS::Compute::CPUTopology",
      "display_name": "Virtual CPU Topology",
      "description": "How the virtual CPUs of an instance are laid out as sockets, cores per socket and threads per core. Guests licensed per socket, or schedulers that care about SMT, read this. An image sets a preference (hw_cpu_*); a flavor can set limits (hw:cpu_max_*).",
      "visibility": "public",
      "protected": true,
      "resource_type_associations": [
        {"name": "OS::Glance::Image", "prefix": "hw_"},
        {"name": "OS::Cinder::Volume", "prefix": "hw_", "properties_target": "image"},
        {"name": "OS::Nova::Flavor", "prefix": "hw:"}
      ],
      "properties": {
        "cpu_sockets": {"title": "vCPU Sockets", "description": "Preferred number of sockets exposed to the guest.", "type": "integer", "minimum": 1},
        "cpu_cores": {"title": "vCPU Cores", "description": "Preferred number of cores per socket.", "type": "integer", "minimum": 1},
        "cpu_threads": {"title": "vCPU Threads", "description": "Preferred number of threads per core.", "type": "integer", "minimum": 1},
        "cpu_max_sockets": {"title": "Max vCPU Sockets", "description": "Upper bound on the sockets a guest may be given.", "type": "integer", "minimum": 1},
        "cpu_max_cores": {"title": "Max vCPU Cores", "description": "Upper bound on the cores per socket.", "type": "integer", "minimum": 1},
        "cpu_max_threads": {"title": "Max vCPU Threads", "description": "Upper bound on the threads per core.", "type": "integer", "minimum": 1}
      }
    }
    """#

    static let hardware = #"""
    {
      "namespace": "OS::Compute::Hardware",
      "display_name": "Virtual Hardware",
      "description": "The emulated devices and machine an instance booted from this image gets: disk bus, firmware, machine type and device models.",
      "visibility": "public",
      "protected": true,
      "resource_type_associations": [
        {"name": "OS::Glance::Image", "prefix": "hw_"},
        {"name": "OS::Cinder::Volume", "prefix": "hw_", "properties_target": "image"}
      ],
      "properties": {
        "disk_bus": {"title": "Disk Bus", "description": "Bus the root disk is attached to.", "type": "string",
                     "enum": ["scsi", "virtio", "uml", "xen", "ide", "usb", "lxc", "sata"]},
        "firmware_type": {"title": "Firmware Type", "description": "Firmware the guest boots with: legacy BIOS or UEFI.", "type": "string",
                          "enum": ["bios", "uefi"]},
        "machine_type": {"title": "Machine Type", "description": "Emulated machine type, e.g. q35 or pc-i440fx-8.2 (hypervisor specific).", "type": "string"},
        "scsi_model": {"title": "SCSI Model", "description": "SCSI controller model, when disk_bus is scsi.", "type": "string",
                       "enum": ["virtio-scsi", "lsilogic", "lsisas1068", "buslogic", "ibmvscsi"]},
        "vif_model": {"title": "Network Interface Model", "description": "Model of the virtual network cards.", "type": "string",
                      "enum": ["virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet", "vmxnet3"]},
        "video_model": {"title": "Video Model", "description": "Model of the virtual graphics card.", "type": "string",
                        "enum": ["vga", "cirrus", "vmvga", "xen", "qxl", "virtio", "gop", "none", "bochs"]},
        "rng_model": {"title": "Random Number Generator", "description": "Entropy device given to the guest.", "type": "string", "enum": ["virtio"]},
        "qemu_guest_agent": {"title": "QEMU Guest Agent", "description": "The image runs the QEMU guest agent (quiesced snapshots, password setting).", "type": "string",
                             "enum": ["yes", "no"]}
      }
    }
    """#

    static let operatingSystem = #"""
    {
      "namespace": "OS::OperatingSystem",
      "display_name": "Operating System",
      "description": "What the image contains, so that schedulers, drivers and users can tell guests apart.",
      "visibility": "public",
      "protected": true,
      "resource_type_associations": [
        {"name": "OS::Glance::Image"},
        {"name": "OS::Cinder::Volume", "properties_target": "image"}
      ],
      "properties": {
        "os_distro": {"title": "OS Distro", "description": "Common name of the distribution, lower case (ubuntu, debian, rhel, centos, fedora, opensuse, windows, freebsd…).", "type": "string"},
        "os_version": {"title": "OS Version", "description": "Version of the distribution, e.g. 24.04 or 12.", "type": "string"},
        "os_type": {"title": "OS Type", "description": "Kernel family; some hypervisors treat Windows guests differently.", "type": "string",
                    "enum": ["linux", "windows"]},
        "os_admin_user": {"title": "Admin User", "description": "Name of the guest's administrative account.", "type": "string"},
        "os_require_quiesce": {"title": "Require Quiesce", "description": "Snapshots must quiesce the file systems (needs the guest agent).", "type": "boolean"}
      }
    }
    """#

    static let secureBoot = #"""
    {
      "namespace": "OS::Compute::SecureBoot",
      "display_name": "Secure Boot",
      "description": "Whether the guest firmware verifies the boot loader's signature (UEFI firmware required).",
      "visibility": "public",
      "protected": true,
      "resource_type_associations": [
        {"name": "OS::Glance::Image"},
        {"name": "OS::Nova::Flavor", "prefix": "os:"}
      ],
      "properties": {
        "os_secure_boot": {"title": "Secure Boot", "description": "required: boot only with secure boot; optional: when the host offers it; disabled: never.", "type": "string",
                           "enum": ["required", "disabled", "optional"]}
      }
    }
    """#

    static let watchdog = #"""
    {
      "namespace": "OS::Compute::Watchdog",
      "display_name": "Watchdog Behavior",
      "description": "A virtual hardware watchdog: what the hypervisor does when the guest stops petting it.",
      "visibility": "public",
      "protected": true,
      "resource_type_associations": [
        {"name": "OS::Glance::Image", "prefix": "hw_"},
        {"name": "OS::Cinder::Volume", "prefix": "hw_", "properties_target": "image"},
        {"name": "OS::Nova::Flavor", "prefix": "hw:"},
        {"name": "OS::Nova::Server", "prefix": "hw_", "properties_target": "metadata"}
      ],
      "properties": {
        "watchdog_action": {"title": "Watchdog Action", "description": "Action taken when the guest hangs; disabled gives no watchdog device.", "type": "string",
                            "enum": ["disabled", "reset", "poweroff", "pause", "none"]}
      }
    }
    """#

    static let allocationRatios = #"""
    {
      "namespace": "OS::Compute::AllocationRatios",
      "display_name": "Allocation Ratios",
      "description": "Overcommit ratios the scheduler applies to the hosts of an aggregate.",
      "visibility": "public",
      "protected": true,
      "resource_type_associations": [
        {"name": "OS::Nova::Aggregate"}
      ],
      "properties": {
        "cpu_allocation_ratio": {"title": "CPU Allocation Ratio", "description": "Virtual CPUs allowed per physical CPU.", "type": "number", "minimum": 0},
        "ram_allocation_ratio": {"title": "RAM Allocation Ratio", "description": "Virtual RAM allowed per byte of physical RAM.", "type": "number", "minimum": 0},
        "disk_allocation_ratio": {"title": "Disk Allocation Ratio", "description": "Virtual disk allowed per byte of physical disk.", "type": "number", "minimum": 0}
      },
      "tags": [{"name": "overcommit"}]
    }
    """#
}
