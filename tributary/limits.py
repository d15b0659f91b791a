"""The size limits that several parts of the system must agree on, stated once.

A limit a deployment may tune is a setting (tributary/settings.py); these are the fixed ones the settings,
the Kafka clients, the topics and the handlers are tied to.
"""

from __future__ import annotations

# The largest Kafka message: topics are created with it (max.message.bytes), producers may send it and consumers
# fetch it. Large enough for a full upsert command of packed vectors. A broker's own limit must be at least this
# (deploy/compose/docker-compose.yml, deploy/local/services.sh).
MAX_MESSAGE_BYTES = 32 * 1024 * 1024

# Commands applied together (one DeepLake commit per dataset), by the Kafka applier and by the embedded bus.
COMMAND_BATCH = 500

# Command ids remembered in each dataset's commit messages, so a command applied again after a crash is known.
# A crash redelivers at most one batch, so the ledger holds several.
LEDGER_SIZE = 4 * COMMAND_BATCH

# The largest image a record or a query may give (PNG or JPEG bytes). Commands carry a record's images to the
# applier in base64: eight image fields of this size (MAX_VECTOR_FIELDS) stay within one Kafka message.
MAX_IMAGE_BYTES = 2 * 1024 * 1024
# The most pixels an image may have: a small PNG can declare an enormous canvas (a decompression bomb), and each
# image is decoded once when checked (4096 x 4096 RGB: 48 MB while it is).
MAX_IMAGE_PIXELS = 4096 * 4096
