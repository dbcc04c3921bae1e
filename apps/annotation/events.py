"""What the annotation app tells the apps above it (learning), which subscribe to these
signals in their ``receivers.py``; annotation never imports them."""

from django.dispatch import Signal

# Items got their final label from the crowd and left the queue. Sent inside the submit's
# transaction, so a receiver's writes commit or roll back with the answer; a receiver
# that starts background work does so on commit. kwargs: project, count.
items_completed = Signal()
