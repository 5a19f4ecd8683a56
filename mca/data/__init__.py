"""Data: the synthetic people renderer and annotation writers (numpy/OpenCV only, no torch on import)."""
