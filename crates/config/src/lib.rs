//! junction-config: placeholder, being written.
