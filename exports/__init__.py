"""Long CSV exports written to a file by the Huey worker, with progress, for their owner only."""
