"""One module per publisher, each registering its published checkpoints in hub.WEIGHTS with
entry.add(). Facts only, each with where the publisher states it."""
