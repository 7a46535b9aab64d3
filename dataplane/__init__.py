"""The dataplane: one Flask-free service that owns every model call, /predict and /v2 alike.

dataplane.call.ModelCall runs the request path of README.md step by step, in the contract's
order; the HTTP views only decode their protocol into a CallRequest and encode the Reply.
dataplane.record holds the one record of a request that audit, log and metrics all read.
"""
