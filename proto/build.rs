//! Compiles `ferrolb/v1/announcer.proto` (the announcer API) and `ferrolb/v1/peer.proto` (the
//! announcer-to-announcer channel) with protox (pure Rust, no `protoc` binary) and generates the prost
//! messages and the tonic clients and servers with tonic-prost-build. Both are package `ferrolb.v1`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTOS: [&str; 2] = ["ferrolb/v1/announcer.proto", "ferrolb/v1/peer.proto"];
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    // The same descriptors, with their imports, for server reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("ferrolb_v1_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
