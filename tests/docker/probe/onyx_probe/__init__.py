"""A probe tool for the docker runner's tests: reports what the container sees."""
