"""Users, projects and tokens in the real Keystone that scripts/keystone.sh runs for the e2e tests.

Plain functions, no pytest fixtures. Runs in the client venv (.venv): openstacksdk for provisioning,
plain `requests` for tokens.

    provision(keystone_url, admin_password) -> dict   idempotent; see its docstring for the shape
    token(keystone_url, username, password, project) -> str   project-scoped token (X-Subject-Token)
    validate(keystone_url, auth_token, subject_token) -> requests.Response   GET /v3/auth/tokens
    revoke(keystone_url, admin_token, token)           DELETE /v3/auth/tokens

keystone_url is the identity v3 endpoint, e.g. "http://127.0.0.1:35357/v3" (a URL without the
trailing /v3 is accepted too).
"""

import requests

DOMAIN_ID = "default"

SERVICE_PROJECT = "service"
SERVICE_USER = "imaged"
SERVICE_PASSWORD = "imaged-service-secret"
# What a Glance service user gets: `service` (the role keystone's validate_token policy names,
# created by `keystone-manage bootstrap`) and `admin` on the service project.
SERVICE_ROLES = ("service", "admin")

PROJECTS = ("alpha", "beta")
# role per user suffix; keystone's bootstrap makes admin imply manager imply member imply reader.
USER_ROLES = {"admin": "admin", "member": "member", "reader": "reader"}


def _v3(url):
    url = url.rstrip("/")
    return url if url.endswith("/v3") else url + "/v3"


def password_for(username):
    return f"{username}-pw"


def _connection(keystone_url, admin_password):
    import openstack.connection

    return openstack.connection.Connection(
        auth_url=_v3(keystone_url),
        username="admin",
        password=admin_password,
        project_name="admin",
        user_domain_id=DOMAIN_ID,
        project_domain_id=DOMAIN_ID,
        identity_interface="public",
    )


def _role(idn, name):
    role = idn.find_role(name)
    return role if role is not None else idn.create_role(name=name)


def _project(idn, name, description):
    project = idn.find_project(name, domain_id=DOMAIN_ID)
    if project is None:
        project = idn.create_project(name=name, domain_id=DOMAIN_ID, description=description, is_enabled=True)
    return project


def _user(idn, name, password, project):
    # An existing user keeps its password: changing it would revoke that user's live tokens.
    user = idn.find_user(name, domain_id=DOMAIN_ID)
    if user is None:
        user = idn.create_user(
            name=name, password=password, domain_id=DOMAIN_ID, default_project_id=project.id, is_enabled=True
        )
    return user


def _grant(idn, project, user, role):
    if not idn.validate_user_has_project_role(project, user, role):
        idn.assign_project_role_to_user(project, user, role)


def provision(keystone_url, admin_password):
    """Create (or find) the service user and the alpha/beta projects with their users.

    Returns:
      {"auth_url": "http://127.0.0.1:PORT/v3",
       "service": {"username": "imaged", "password": ..., "project_name": "service",
                   "project_id": ..., "user_id": ..., "user_domain_id": "default", "project_domain_id": "default"},
       "users": {"alpha-admin": {"password": "alpha-admin-pw", "project": "alpha", "project_id": ...,
                                 "user_id": ..., "role": "admin"}, ... (alpha|beta)-(admin|member|reader)},
       "projects": {"alpha": id, "beta": id, "service": id}}
    """
    auth_url = _v3(keystone_url)
    conn = _connection(auth_url, admin_password)
    try:
        idn = conn.identity
        roles = {name: _role(idn, name) for name in {"admin", "member", "reader", *SERVICE_ROLES}}

        service_project = _project(idn, SERVICE_PROJECT, "OpenStack services")
        service_user = _user(idn, SERVICE_USER, SERVICE_PASSWORD, service_project)
        for name in SERVICE_ROLES:
            _grant(idn, service_project, service_user, roles[name])

        projects = {SERVICE_PROJECT: service_project.id}
        users = {}
        for pname in PROJECTS:
            project = _project(idn, pname, f"imaged e2e project {pname}")
            projects[pname] = project.id
            for suffix, role_name in USER_ROLES.items():
                uname = f"{pname}-{suffix}"
                user = _user(idn, uname, password_for(uname), project)
                _grant(idn, project, user, roles[role_name])
                users[uname] = {
                    "password": password_for(uname),
                    "project": pname,
                    "project_id": project.id,
                    "user_id": user.id,
                    "role": role_name,
                }
        return {
            "auth_url": auth_url,
            "service": {
                "username": SERVICE_USER,
                "password": SERVICE_PASSWORD,
                "project_name": SERVICE_PROJECT,
                "project_id": service_project.id,
                "user_id": service_user.id,
                "user_domain_id": DOMAIN_ID,
                "project_domain_id": DOMAIN_ID,
            },
            "users": users,
            "projects": projects,
        }
    finally:
        conn.close()


def token(keystone_url, username, password, project, timeout=30):
    """A project-scoped token (password method, user and project in the default domain)."""
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": username, "domain": {"id": DOMAIN_ID}, "password": password}},
            },
            "scope": {"project": {"name": project, "domain": {"id": DOMAIN_ID}}},
        }
    }
    r = requests.post(_v3(keystone_url) + "/auth/tokens?nocatalog=1", json=body, timeout=timeout)
    if r.status_code != 201:
        raise RuntimeError(f"keystone token for {username}@{project}: HTTP {r.status_code}: {r.text[:300]}")
    return r.headers["X-Subject-Token"]


def validate(keystone_url, auth_token, subject_token, timeout=30):
    """GET /v3/auth/tokens: 200 with {"token": {...}} when valid, 404 when revoked/expired/unknown."""
    return requests.get(
        _v3(keystone_url) + "/auth/tokens?nocatalog=1",
        headers={"X-Auth-Token": auth_token, "X-Subject-Token": subject_token},
        timeout=timeout,
    )


def revoke(keystone_url, admin_token, token, timeout=30):
    """DELETE /v3/auth/tokens; keystone answers 204. Any later validation of `token` answers 404."""
    r = requests.delete(
        _v3(keystone_url) + "/auth/tokens",
        headers={"X-Auth-Token": admin_token, "X-Subject-Token": token},
        timeout=timeout,
    )
    if r.status_code != 204:
        raise RuntimeError(f"keystone revoke: HTTP {r.status_code}: {r.text[:300]}")
