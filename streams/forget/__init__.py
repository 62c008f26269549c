"""The deletion lane's logic: forget one person, prove it, and say so in a receipt.

One request, in order (lane.py):
1. request.py: the request decoded and validated once (a malformed one is rejected at once);
2. expand.py: the subject's identifiers through identity records, and how the person is written;
3. the suppression ledger takes the identifiers and mention patterns (so nothing indexes them again),
   every worker applies them, and the request passes the indexer's write gate;
4. erase.py: scrub the state records, delete the chunks about the person, redact the chunks that
   mention them (re-embedded), in every index generation, saving what it is about to write first
   (progress.py) so a worker that dies midway leaves the note for the next attempt;
5. verify.py: search for the person every way a user could; anything found fails the attempt;
6. dead_letters.py: tombstone the dead letters that name or mention them (beside the index work);
7. receipt.py: the receipt, published before the request's offset moves; purge.py then force-merges
   the deleted documents away and publishes a second receipt.

The faust agent (agents/forget_subjects.py) only decodes, validates and hands the request over:
everything here takes its dependencies explicitly (the client, the ledger, the generations, the
Kafka senders).
"""
