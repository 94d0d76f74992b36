//! Compiles `ferrolb/v1/announcer.proto` with protox (pure Rust, no `protoc` binary) and generates the
//! prost messages and the tonic client and server with tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "ferrolb/v1/announcer.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
