//! Compiles the XDP program (`bpf/aftr_xdp.c`) with clang into `$OUT_DIR/aftr_xdp.o`,
//! which `io/xdp.rs` embeds. `CLANG` names another compiler; `bash scripts/setup.sh`
//! installs Debian's clang and libbpf headers.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/aftr_xdp.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("aftr_xdp.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    // Debian keeps asm/types.h under the multiarch include directory.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-I", &multiarch, "-c", src, "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed on {src} ({s})"),
        Err(e) => panic!(
            "cannot run {clang} to build the XDP program ({e}); install clang and libbpf-dev \
             (bash scripts/setup.sh does)"
        ),
    }
}
