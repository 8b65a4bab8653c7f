//! powerd: the controller Pi's power daemon.
