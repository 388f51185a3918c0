"""Schemathesis hooks for the OpenStack Image API document (loaded with SCHEMATHESIS_HOOKS).

Glance's PATCH bodies are JSON sent as `application/openstack-images-v2.1-json-patch` (and Tempest's draft-04
`…-v2.0-json-patch`); schemathesis only knows how to send `application/json` and `+json` types, so these media
types get a JSON serializer here. Authentication needs no hook: `X-Auth-Token` goes in with `-H`.
"""

import schemathesis

PATCH_MEDIA_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)


# Sent exactly as schemathesis sends application/json bodies (the Content-Type stays the patch media type).
schemathesis.serializer.alias(list(PATCH_MEDIA_TYPES), "application/json")

# Resumable uploads' PATCH bodies are raw bytes under tus's media type: sent as application/octet-stream is.
schemathesis.serializer.alias(["application/offset+octet-stream"], "application/octet-stream")
