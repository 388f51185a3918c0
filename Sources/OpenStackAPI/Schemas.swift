import HTTPTypes
import ImageCore

/// `/v2/schemas/*`. glanceclient validates show/create responses against the image schema,
/// so it describes exactly what `Views.image` writes.
enum Schemas {
    static let uuidPattern = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"

    static func imageProperties(_ config: ImageServiceConfig) -> String {
        func list(_ xs: [String]) -> String { xs.map { "\"\($0)\"" }.joined(separator: ", ") }
        let statuses = list(ImageStatus.allCases.map(\.rawValue))
        return """
        {
            "id": {"type": "string", "description": "An identifier for the image", "pattern": "\(uuidPattern)"},
            "name": {"type": ["null", "string"], "description": "Descriptive name for the image", "maxLength": 255},
            "status": {"type": "string", "readOnly": true, "description": "Status of the image", "enum": [\(statuses)]},
            "visibility": {"type": "string", "description": "Scope of image accessibility", "enum": ["community", "public", "private", "shared"]},
            "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
            "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
            "checksum": {"type": ["null", "string"], "readOnly": true, "description": "md5 hash of image contents.", "maxLength": 32},
            "os_hash_algo": {"type": ["null", "string"], "readOnly": true, "description": "Algorithm to calculate the os_hash_value", "maxLength": 64},
            "os_hash_value": {"type": ["null", "string"], "readOnly": true, "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo", "maxLength": 128},
            "owner": {"type": ["null", "string"], "description": "Owner of the image", "maxLength": 255},
            "size": {"type": ["null", "integer"], "readOnly": true, "description": "Size of image file in bytes"},
            "virtual_size": {"type": ["null", "integer"], "readOnly": true, "description": "Virtual size of image in bytes"},
            "container_format": {"type": ["null", "string"], "description": "Format of the container", "enum": [null, \(list(config.containerFormats))]},
            "disk_format": {"type": ["null", "string"], "description": "Format of the disk", "enum": [null, \(list(config.diskFormats))]},
            "created_at": {"type": "string", "readOnly": true, "description": "Date and time of image registration"},
            "updated_at": {"type": "string", "readOnly": true, "description": "Date and time of the last image modification"},
            "tags": {"type": "array", "description": "List of strings related to the image", "items": {"type": "string", "maxLength": 255}},
            "direct_url": {"type": "string", "readOnly": true, "description": "URL to access the image file kept in external store"},
            "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
            "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
            "self": {"type": "string", "readOnly": true, "description": "An image self url"},
            "file": {"type": "string", "readOnly": true, "description": "An image file url"},
            "stores": {"type": "string", "readOnly": true, "description": "Store in which image data resides."},
            "schema": {"type": "string", "readOnly": true, "description": "An image schema url"},
            "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store", "items": {"type": "object", "properties": {"url": {"type": "string", "maxLength": 255}, "metadata": {"type": "object"}}, "required": ["url", "metadata"]}},
            "kernel_id": {"type": ["null", "string"], "pattern": "\(uuidPattern)", "description": "ID of image stored in Glance that should be used as the kernel when booting an AMI-style image.", "is_base": false},
            "ramdisk_id": {"type": ["null", "string"], "pattern": "\(uuidPattern)", "description": "ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image.", "is_base": false},
            "instance_uuid": {"type": "string", "description": "Metadata which can be used to record which instance this image is associated with. (Informational only, does not create an instance snapshot.)", "is_base": false},
            "architecture": {"type": "string", "description": "Operating system architecture as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html", "is_base": false},
            "os_distro": {"type": "string", "description": "Common name of operating system distribution as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html", "is_base": false},
            "os_version": {"type": "string", "description": "Operating system version as specified by the distributor.", "is_base": false},
            "description": {"type": "string", "description": "A human-readable string describing this image.", "is_base": false},
            "cinder_encryption_key_id": {"type": "string", "description": "Identifier in the OpenStack Key Management Service for the encryption key for the Block Storage Service to use when mounting a volume created from this image", "is_base": false},
            "cinder_encryption_key_deletion_policy": {"type": "string", "enum": ["on_image_deletion", "do_not_delete"], "description": "States the condition under which the Image Service will delete the object associated with the 'cinder_encryption_key_id' image property.  If this property is missing, the Image Service will take no action", "is_base": false}
        }
        """
    }

    static func image(_ config: ImageServiceConfig) -> String {
        """
        {"name": "image", "properties": \(imageProperties(config)), "additionalProperties": {"type": "string"},
         "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"}, {"rel": "describedby", "href": "{schema}"}]}
        """
    }

    static func images(_ config: ImageServiceConfig) -> String {
        """
        {"name": "images", "properties": {"images": {"type": "array", "items": \(image(config))},
         "schema": {"type": "string"}, "first": {"type": "string"}, "next": {"type": "string"}},
         "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"}, {"rel": "describedby", "href": "{schema}"}]}
        """
    }

    static let memberProperties = """
        {"member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
         "image_id": {"type": "string", "description": "An identifier for the image", "pattern": "\(uuidPattern)"},
         "created_at": {"type": "string", "description": "Date and time of image member creation"},
         "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
         "status": {"type": "string", "description": "The status of this image member", "enum": ["pending", "accepted", "rejected"]},
         "schema": {"type": "string", "readOnly": true, "description": "An image member schema url"}}
        """

    static let member = """
        {"name": "member", "properties": \(memberProperties)}
        """

    static let members = """
        {"name": "members", "properties": {"members": {"type": "array", "items": {"name": "member", "properties": \(memberProperties)}},
         "schema": {"type": "string"}}, "links": [{"rel": "describedby", "href": "{schema}"}]}
        """

    /// Glance's task schema (`_TASK_SCHEMA` in glance/api/v2/tasks.py), as Glance serves it.
    static let taskMembers = """
            "id": {"description": "An identifier for the task", "pattern": "\(uuidPattern)", "type": "string"},
            "type": {"description": "The type of task represented by this content", "enum": ["import", "api_image_import", "location_import"], "type": "string"},
            "status": {"description": "The current status of this task", "enum": ["pending", "processing", "success", "failure"], "type": "string"},
            "owner": {"description": "An identifier for the owner of this task", "type": "string"},
            "image_id": {"description": "Image associated with the task", "type": "string"},
            "request_id": {"description": "Human-readable informative request-id", "type": "string"},
            "user_id": {"description": "User associated with the task", "type": "string"},
            "expires_at": {"description": "Datetime when this resource would be subject to removal", "type": ["null", "string"]},
            "created_at": {"description": "Datetime when this resource was created", "type": "string"},
            "updated_at": {"description": "Datetime when this resource was updated", "type": "string"},
            "self": {"readOnly": true, "type": "string"},
            "schema": {"readOnly": true, "type": "string"}
        """

    /// The members a list's stubs leave out.
    static let taskDetailMembers = """
            "input": {"description": "The parameters required by task, JSON blob", "type": ["null", "object"]},
            "result": {"description": "The result of current task, JSON blob", "type": ["null", "object"]},
            "message": {"description": "Human-readable informative message only included when appropriate (usually on failure)", "type": "string"}
        """

    static let task = """
        {"name": "task", "properties": {\(taskMembers), \(taskDetailMembers)}, "additionalProperties": false}
        """

    static let tasks = """
        {"name": "tasks", "properties": {"tasks": {"type": "array", "items": {"name": "task", "properties": {\(taskMembers)}, "additionalProperties": false}},
         "first": {"type": "string"}, "next": {"type": "string"}, "schema": {"type": "string"}},
         "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"}, {"rel": "describedby", "href": "{schema}"}]}
        """
}
