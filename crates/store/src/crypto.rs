//! Provider secrets at rest: AES-256-GCM under a master key with a key id.
