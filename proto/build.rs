//! Compiles `ferrolb/v1/announcer.proto` (the announcer API) and `ferrolb/v1/peer.proto` (the
//! announcer-to-announcer channel) with protox (pure Rust, no `protoc` binary) and generates the prost
//! messages and the tonic clients and servers with tonic-prost-build. Both are package `ferrolb.v1`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTOS: [&str; 2] = ["ferrolb/v1/announcer.proto", "ferrolb/v1/peer.proto"];
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
