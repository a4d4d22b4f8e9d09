"""The models: image decoding, captioners, embedders, keyword extraction."""
