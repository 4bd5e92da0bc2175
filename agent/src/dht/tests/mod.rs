//! Core tests: properties of the routing table, the simulator at N = 1,000,
//! and the sans-IO source check.

mod util;
