//! Builds the web app in `web/` with npm + vite and embeds its files into the crate.
//!
//! The output goes under `OUT_DIR`; `assets.rs` there lists every file as
//! `(path, content type, bytes)` for `include_bytes!`. The build needs Node.js and npm;
//! without them it stops with a message saying so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let web = manifest_dir.join("web");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = out_dir.join("web-dist");

    for input in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed=web/{input}");
    }
    println!("cargo:rerun-if-env-changed=SIGHTLINE_NPM");

    let npm = std::env::var("SIGHTLINE_NPM").unwrap_or_else(|_| "npm".to_string());
    match Command::new(&npm).arg("--version").output() {
        Ok(output) if output.status.success() => {}
        _ => fail(&format!(
            "the web UI (ui/web) is built with Node.js (>= 20.19) and npm, and `{npm} --version` \
             did not run. Install them (Debian: `apt-get install nodejs npm`, or from nodejs.org) \
             or point SIGHTLINE_NPM at npm, then build again."
        )),
    }

    if needs_install(&web) {
        run(
            &npm,
            &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
            &web,
            &[],
        );
    }
    run(
        &npm,
        &["run", "build", "--silent"],
        &web,
        &[("SIGHTLINE_UI_OUT", &dist)],
    );

    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    if !files.iter().any(|(name, _)| name == "index.html") {
        fail("vite produced no index.html");
    }
    let mut source =
        String::from("/// Every file of the built web app: (path, content type, bytes).\n");
    source.push_str("pub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for (name, path) in &files {
        let _ = writeln!(
            source,
            "    ({name:?}, {:?}, include_bytes!({:?})),",
            content_type(name),
            path.display().to_string()
        );
    }
    source.push_str("];\n");
    std::fs::write(out_dir.join("assets.rs"), source)
        .unwrap_or_else(|e| fail(&format!("writing assets.rs: {e}")));
}

/// `npm ci` when `node_modules` is missing or older than the lock file.
fn needs_install(web: &Path) -> bool {
    let installed = modified(&web.join("node_modules/.package-lock.json"));
    let lock = modified(&web.join("package-lock.json"));
    match (installed, lock) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn run(program: &str, args: &[&str], dir: &Path, env: &[(&str, &Path)]) {
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    for (key, value) in env {
        command.env(key, value);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| fail(&format!("running `{program} {}`: {e}", args.join(" "))));
    if !status.success() {
        fail(&format!(
            "`{program} {}` in {} failed ({status})",
            args.join(" "),
            dir.display()
        ));
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("reading {}: {e}", dir.display())));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| fail(&format!("reading {}: {e}", dir.display())))
            .path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let name = path
                .strip_prefix(root)
                .expect("walked under root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((name, path));
        }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Stops the build; cargo shows the panic message as the build script's error.
fn fail(message: &str) -> ! {
    panic!("{message}");
}
