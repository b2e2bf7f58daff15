"""The fault suite (issue 9): kill -9 during each step, a full disk, bad input at every boundary."""
