//! Small parts every folder above may use: the command runner, stop signals, the OS seam, paths,
//! HTTP over a stream, tar reading and answers kept between runs.

pub mod hash;
pub mod http;
pub mod memo;
pub mod net;
pub mod os;
pub mod paths;
pub mod runner;
pub mod stop;
pub mod tar;
pub mod trace;
pub mod units;
