//! Which private engine: a channel (today's Docker from Debian testing, or the floor from Debian
//! stable) and an image store (containerd or classic), with the packages each is made of.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

/// A set of Debian packages tested together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Today's Docker as Debian testing carries it (dockerd 28.5, buildx 0.29, compose 2.40).
    Current,
    /// The oldest set the project supports: Debian stable's (dockerd 26.1, buildx 0.13).
    Floor,
}

impl FromStr for Channel {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Channel> {
        match s {
            "current" => Ok(Channel::Current),
            "floor" => Ok(Channel::Floor),
            _ => bail!("unknown engine channel `{s}`: use `current` (the default) or `floor`"),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Channel::Current => "current",
            Channel::Floor => "floor",
        })
    }
}

/// One private engine: a channel and whether it keeps images in the classic store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Spec {
    pub(crate) channel: Channel,
    pub(crate) classic: bool,
}

impl Spec {
    pub(crate) const DEFAULT: Spec = Spec { channel: Channel::Current, classic: false };
    /// Every private engine a checkout can run, in the order builds look for a running one.
    pub(crate) const ALL: [Spec; 4] = [
        Spec::DEFAULT,
        Spec { channel: Channel::Floor, classic: false },
        Spec { channel: Channel::Current, classic: true },
        Spec { channel: Channel::Floor, classic: true },
    ];

    /// `current`, `floor`, `current-classic`, `floor-classic`: the folder and the name people use.
    pub fn name(&self) -> String {
        if self.classic {
            format!("{}-classic", self.channel)
        } else {
            self.channel.to_string()
        }
    }

    fn index(&self) -> u16 {
        Spec::ALL.iter().position(|s| s == self).unwrap_or(0) as u16
    }

    /// Each engine has a registry of its own on loopback, so two side by side never share one.
    pub(crate) fn registry_port(&self) -> u16 {
        5000 + self.index()
    }

    pub(crate) fn packages(&self) -> &'static [Package] {
        match self.channel {
            Channel::Current => CURRENT,
            Channel::Floor => FLOOR,
        }
    }
}

impl FromStr for Spec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Spec> {
        let (channel, classic) = match s.strip_suffix("-classic") {
            Some(c) => (c, true),
            None => (s, false),
        };
        Ok(Spec { channel: channel.parse()?, classic })
    }
}

/// One pinned Debian package: the suite it comes from, the upstream series it must belong to,
/// and the exact version the project was tested with.
#[derive(Debug)]
pub(crate) struct Package {
    pub(crate) name: &'static str,
    pub(crate) suite: &'static str,
    pub(crate) series: &'static str,
    pub(crate) tested: &'static str,
}

const fn pkg(name: &'static str, suite: &'static str, series: &'static str, tested: &'static str) -> Package {
    Package { name, suite, series, tested }
}

/// Debian 12's own tools that every channel shares (and cosign): its runc (later suites' runc needs glibc 2.38),
/// QEMU for the other architecture, debootstrap for the stand-ins, and iptables with its
/// libraries (this machine kind has none).
macro_rules! shared_packages {
    ($($extra:expr),* $(,)?) => {
        &[
            $($extra,)*
            pkg("tini", "trixie", "0.19", "0.19.0-3+b8"),
            // Signing (`--sign`, `verify`): testing's cosign needs glibc 2.34 and so runs on Debian 12.
            pkg("cosign", "testing", "3.1", "3.1.1-2"),
            pkg("docker-registry", "trixie", "2.8", "2.8.3+ds1-2+b8"),
            pkg("runc", "bookworm", "1.1", "1.1.5+ds1-1+deb12u1"),
            pkg("qemu-user-static", "bookworm", "7.2", "7.2+dfsg-7+deb12u18+b3"),
            pkg("debootstrap", "bookworm", "1.0", "1.0.128+nmu2+deb12u2"),
            pkg("iptables", "bookworm", "1.8", "1.8.9-2"),
            pkg("libip4tc2", "bookworm", "1.8", "1.8.9-2"),
            pkg("libip6tc2", "bookworm", "1.8", "1.8.9-2"),
            pkg("libxtables12", "bookworm", "1.8", "1.8.9-2"),
            pkg("libnftnl11", "bookworm", "1.2", "1.2.4-2"),
            pkg("libnetfilter-conntrack3", "bookworm", "1.0", "1.0.9-3"),
            pkg("libnfnetlink0", "bookworm", "1.0", "1.0.2-2"),
            pkg("libmnl0", "bookworm", "1.0", "1.0.4-3"),
        ]
    };
}

/// Debian testing's Docker, whose binaries need glibc 2.34 at most and so run on Debian 12.
const CURRENT: &[Package] = shared_packages![
    pkg("docker.io", "testing", "28.5", "28.5.2+dfsg4-5"),
    pkg("docker-buildx", "testing", "0.29", "0.29.1+ds1-4"),
    pkg("docker-compose", "testing", "2.40", "2.40.3-3"),
    pkg("containerd", "testing", "2.1", "2.1.9+ds1-5"),
];

/// Debian 13's Docker: the floor the project promises to keep working.
const FLOOR: &[Package] = shared_packages![
    pkg("docker.io", "trixie", "26.1", "26.1.5+dfsg1-9+deb13u1+b1"),
    pkg("docker-buildx", "trixie", "0.13", "0.13.1+ds1-3"),
    pkg("docker-compose", "trixie", "2.26", "2.26.1-4"),
    pkg("containerd", "trixie", "1.7", "1.7.24~ds1-6+deb13u1"),
];

/// What to do with the version a suite offers for a pinned package.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PinCheck {
    Tested,
    /// Same series, another version: installed, and said in one line.
    Drifted(String),
}

/// Checks the version a suite has against the pin: another series is refused (the channel was
/// never tested with it); another version of the same series is taken and named.
pub(crate) fn check_pin(p: &Package, found: &str) -> Result<PinCheck> {
    if found == p.tested {
        return Ok(PinCheck::Tested);
    }
    if !series_matches(found, p.series) {
        bail!(
            "Debian {} has {} {found}, not the pinned {}.x (tested: {}): that suite cannot make this channel; update the pin in xtask/src/engine/channel.rs after testing it",
            p.suite, p.name, p.series, p.tested
        );
    }
    Ok(PinCheck::Drifted(format!(
        "Debian {} has {} {found} where {} was tested; installing {found}",
        p.suite, p.name, p.tested
    )))
}

pub(crate) fn series_matches(version: &str, series: &str) -> bool {
    version.strip_prefix(series).is_some_and(|rest| {
        rest.starts_with('.') || rest.starts_with('+') || rest.starts_with('-') || rest.starts_with('~')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_name_themselves() {
        for spec in Spec::ALL {
            assert_eq!(spec.name().parse::<Spec>().unwrap(), spec);
        }
        assert_eq!("floor-classic".parse::<Spec>().unwrap(), Spec { channel: Channel::Floor, classic: true });
        assert!("nightly".parse::<Spec>().unwrap_err().to_string().contains("use `current`"));
        let ports: std::collections::BTreeSet<u16> = Spec::ALL.iter().map(Spec::registry_port).collect();
        assert_eq!(ports.len(), Spec::ALL.len(), "each engine has its own registry port");
        assert_eq!(Spec::DEFAULT.registry_port(), 5000);
    }

    #[test]
    fn pins_are_checked_by_series_and_drift_is_named() {
        let p = pkg("docker.io", "testing", "28.5", "28.5.2+dfsg4-5");
        assert_eq!(check_pin(&p, "28.5.2+dfsg4-5").unwrap(), PinCheck::Tested);
        match check_pin(&p, "28.5.3+dfsg1-1").unwrap() {
            PinCheck::Drifted(line) => {
                assert!(line.contains("28.5.3+dfsg1-1") && line.contains("28.5.2+dfsg4-5"), "{line}")
            }
            other => panic!("{other:?}"),
        }
        let err = check_pin(&p, "29.0.1+dfsg1-1").unwrap_err().to_string();
        assert!(err.contains("Debian testing has docker.io 29.0.1+dfsg1-1, not the pinned 28.5.x"), "{err}");
        assert!(!series_matches("28.50.1", "28.5"));
        assert!(series_matches("1.7.24~ds1-6", "1.7"));
    }

    #[test]
    fn every_channel_brings_the_same_tools_around_its_docker() {
        for spec in Spec::ALL {
            let names: Vec<&str> = spec.packages().iter().map(|p| p.name).collect();
            for needed in ["docker.io", "docker-buildx", "docker-compose", "containerd", "runc", "iptables"] {
                assert!(names.contains(&needed), "{} lacks {needed}", spec.name());
            }
            for p in spec.packages() {
                assert!(series_matches(p.tested, p.series), "{} {} is not in {}", p.name, p.tested, p.series);
            }
        }
    }
}
