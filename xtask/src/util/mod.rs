//! Small parts every folder above may use: the command runner, stop signals, the OS seam, paths,
//! HTTP over a stream, tar reading and answers kept between runs.

pub(crate) mod hash;
pub mod http;
pub(crate) mod memo;
pub(crate) mod net;
pub mod os;
pub(crate) mod pathmatch;
pub mod paths;
pub(crate) mod progress;
pub(crate) mod runner;
pub mod stop;
pub mod tar;
pub(crate) mod trace;
pub(crate) mod units;
