//! FerroLB IPAM.
