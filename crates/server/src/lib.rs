//! junction-server: placeholder, being written.
