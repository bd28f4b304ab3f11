//! Where one private engine's files are (`Layout`: prefix, data root, sockets, pid files), and
//! the host facts every engine module needs to find them (architecture, library folder, the
//! environment that runs a program from the prefix).

use std::path::{Path, PathBuf};

use super::channel::Spec;
use super::Engine;
use crate::util::paths;

/// The host's Debian architecture name.
pub fn host_arch() -> &'static str {
    if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "amd64"
    }
}

pub(crate) fn multiarch(arch: &str) -> &'static str {
    if arch == "arm64" {
        "aarch64-linux-gnu"
    } else {
        "x86_64-linux-gnu"
    }
}

/// One private engine's files. Sockets and exec state go under /run (short paths: a unix socket
/// path is limited to 108 bytes), named after the engine's folder so two never share one.
pub struct Layout {
    pub(crate) spec: Spec,
    /// The folder's name: the spec's (`current`, ...) or one given with `engine up --name`.
    pub(crate) name: String,
    port: u16,
    /// The folder every private engine of this checkout lives in (downloads are shared there).
    pub(crate) base: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) prefix: PathBuf,
    pub run: PathBuf,
}

impl Layout {
    pub fn new(spec: Spec) -> Layout {
        Layout::at(spec, &spec.name(), spec.registry_port())
    }
    pub(super) fn at(spec: Spec, name: &str, port: u16) -> Layout {
        let base = paths::engine_dir();
        let root = base.join(name);
        let run = PathBuf::from(format!("/run/xtask-engine-{:08x}", short_hash(&root.display().to_string())));
        Layout { spec, name: name.to_string(), port, prefix: root.join("prefix"), root, run, base }
    }
    pub(crate) fn socket(&self) -> PathBuf {
        self.run.join("docker.sock")
    }
    pub(crate) fn dockerd_pid(&self) -> PathBuf {
        self.run.join("dockerd.pid")
    }
    pub(super) fn registry_pid(&self) -> PathBuf {
        self.run.join("registry.pid")
    }
    pub(super) fn binfmt_marker(&self) -> PathBuf {
        self.run.join("binfmt-registered")
    }
    pub(crate) fn docker_config(&self) -> PathBuf {
        self.root.join("docker-config")
    }
    pub(crate) fn registry_addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub(crate) fn registry_port(&self) -> u16 {
        self.port
    }
    /// A bridge name of at most 15 bytes, unique to this engine's folder.
    pub(super) fn bridge(&self) -> String {
        format!("xtask{:08x}", short_hash(&self.root.display().to_string()))
    }
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        ["usr/bin", "usr/sbin"]
            .iter()
            .map(|d| self.prefix.join(d).join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| self.prefix.join("usr/bin").join(name))
    }
    /// The variables that point the docker CLI at this engine and its plug-ins.
    pub(crate) fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("DOCKER_HOST".to_string(), format!("unix://{}", self.socket().display())),
            ("DOCKER_CONFIG".to_string(), self.docker_config().display().to_string()),
        ]
    }
    pub(crate) fn engine(&self, started_now: bool) -> Engine {
        Engine { env: self.client_env(), spec: Some(self.spec), name: Some(self.name.clone()), started_now }
    }
    /// The exact package versions unpacked into the prefix.
    pub(crate) fn installed_versions(&self) -> Vec<(String, String)> {
        std::fs::read(self.prefix.join("versions.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
    pub(crate) fn running(&self) -> bool {
        self.dockerd().is_some()
    }
    /// A pid counts as ours only while it runs a program from our prefix: a stale pid file whose
    /// number was reused by something else is never signalled.
    pub(crate) fn owns(&self, pid: u32) -> bool {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(&self.prefix))
    }
    pub(crate) fn dockerd(&self) -> Option<u32> {
        read_pid(&self.dockerd_pid()).filter(|p| self.owns(*p))
    }
    pub(crate) fn registry(&self) -> Option<u32> {
        read_pid(&self.registry_pid()).filter(|p| self.owns(*p))
    }
}

/// A short name-safe hash of a path, for socket folders, bridge names and subnets.
pub(super) fn short_hash(s: &str) -> u32 {
    crate::util::hash::fnv1a_32(s.bytes())
}

pub(super) fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

pub(super) fn prefix_env(layout: &Layout) -> Vec<(String, String)> {
    let libs = layout.prefix.join("usr/lib").join(multiarch(host_arch()));
    let path = format!(
        "{}:{}:{}",
        layout.prefix.join("usr/sbin").display(),
        layout.prefix.join("usr/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    vec![
        ("PATH".to_string(), path),
        ("LD_LIBRARY_PATH".to_string(), libs.display().to_string()),
        ("XTABLES_LIBDIR".to_string(), libs.join("xtables").display().to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_side_by_side_share_no_socket_bridge_or_port() {
        let layouts: Vec<Layout> = Spec::ALL.iter().map(|s| Layout::new(*s)).collect();
        for (i, a) in layouts.iter().enumerate() {
            assert!(a.bridge().len() <= 15, "{} is too long for an interface name", a.bridge());
            assert!(a.socket().display().to_string().len() < 108);
            for b in &layouts[i + 1..] {
                assert_ne!(a.socket(), b.socket());
                assert_ne!(a.bridge(), b.bridge());
                assert_ne!(a.registry_addr(), b.registry_addr());
                assert_ne!(a.root, b.root);
            }
        }
    }
}
