"""The board side: the self-contained runner that the bench harness pushes to targets."""
