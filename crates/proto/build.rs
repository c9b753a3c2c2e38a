//! Compiles `proto/tollgate/v1/*.proto` with protox (pure Rust), so a fresh
//! machine needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["common", "router", "quota", "worker", "analytics"]
        .map(|name| root.join(format!("tollgate/v1/{name}.proto")));
    let descriptors = protox::compile(&files, [&root])?;
    // Messages that carry a secret get a hand-written, redacting `Debug`
    // (src/redact.rs), so no `{:?}` can ever print one.
    let secret_bearing = [
        "tollgate.v1.LeaseGrant",
        "tollgate.v1.ProviderRequest",
        "tollgate.v1.AccountSpec",
        "tollgate.v1.AccountUpdate",
        "tollgate.v1.CreatedKey",
    ];
    tonic_prost_build::configure()
        // Bodies and stream chunks pass between services without a copy.
        .bytes(".")
        .build_server(true)
        .build_client(true)
        .skip_debug(secret_bearing)
        .compile_fds(descriptors)?;
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(())
}
