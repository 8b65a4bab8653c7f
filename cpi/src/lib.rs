//! The PiFoundry BOSH CPI.
