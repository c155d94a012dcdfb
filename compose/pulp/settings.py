# Mounted at /etc/pulp/settings.py in the pulp/pulp container.
# Build nodes and users fetch content through the nginx service, so links must name it.
# The compose file overrides this with PULP_CONTENT_ORIGIN from compose/.env.
CONTENT_ORIGIN = "http://localhost:8080"
# The artifacts service talks to Pulp with basic auth; container-registry tokens are unused.
TOKEN_AUTH_DISABLED = True
ANALYTICS = False
