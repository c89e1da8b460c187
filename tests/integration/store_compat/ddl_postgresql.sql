CREATE TABLE agent_relay_schema_version (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT ck_agent_relay_schema_version_single_row CHECK (id = 1)
);

CREATE TABLE agent_relay_host_keys (
	host_id UUID NOT NULL, 
	public_key TEXT NOT NULL, 
	pinned_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	CONSTRAINT pk_agent_relay_host_keys PRIMARY KEY (host_id)
);

CREATE TABLE organizations (
	id UUID NOT NULL, 
	name TEXT NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	CONSTRAINT pk_organizations PRIMARY KEY (id)
);

CREATE TABLE users (
	id UUID NOT NULL, 
	username TEXT NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	CONSTRAINT pk_users PRIMARY KEY (id), 
	CONSTRAINT uq_users_username UNIQUE (username)
);

CREATE TABLE auth_sessions (
	id UUID NOT NULL, 
	user_id UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	last_used_at TIMESTAMP WITH TIME ZONE, 
	revoked_at TIMESTAMP WITH TIME ZONE, 
	CONSTRAINT pk_auth_sessions PRIMARY KEY (id), 
	CONSTRAINT fk_auth_sessions_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_auth_sessions_revoked_at ON auth_sessions (revoked_at);

CREATE INDEX ix_auth_sessions_user_id ON auth_sessions (user_id);

CREATE TABLE hosts (
	id UUID NOT NULL, 
	owner_user_id UUID NOT NULL, 
	shared_with_organization_id UUID, 
	machine_id TEXT NOT NULL, 
	name TEXT NOT NULL, 
	status TEXT DEFAULT 'offline' NOT NULL, 
	last_seen_at TIMESTAMP WITH TIME ZONE, 
	agent_version TEXT, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	CONSTRAINT pk_hosts PRIMARY KEY (id), 
	CONSTRAINT ck_hosts_status CHECK (status IN ('offline', 'online')), 
	CONSTRAINT uq_hosts_owner_user_id_machine_id UNIQUE (owner_user_id, machine_id), 
	CONSTRAINT fk_hosts_owner_user_id_users FOREIGN KEY(owner_user_id) REFERENCES users (id) ON DELETE CASCADE, 
	CONSTRAINT fk_hosts_shared_with_organization_id_organizations FOREIGN KEY(shared_with_organization_id) REFERENCES organizations (id) ON DELETE SET NULL
);

CREATE INDEX ix_hosts_shared_with_organization_id ON hosts (shared_with_organization_id);

CREATE TABLE organization_member_metadata (
	organization_id UUID NOT NULL, 
	user_id UUID NOT NULL, 
	role TEXT DEFAULT 'member' NOT NULL, 
	joined_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	CONSTRAINT pk_organization_member_metadata PRIMARY KEY (organization_id, user_id), 
	CONSTRAINT fk_organization_member_metadata_organization_id_organizations FOREIGN KEY(organization_id) REFERENCES organizations (id) ON DELETE CASCADE, 
	CONSTRAINT fk_organization_member_metadata_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_organization_member_metadata_user_id ON organization_member_metadata (user_id);

CREATE TABLE relay_browser_sessions (
	id UUID NOT NULL, 
	host_id UUID NOT NULL, 
	user_id UUID NOT NULL, 
	auth_session_id UUID NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
	last_used_at TIMESTAMP WITH TIME ZONE, 
	revoked_at TIMESTAMP WITH TIME ZONE, 
	CONSTRAINT pk_relay_browser_sessions PRIMARY KEY (id), 
	CONSTRAINT fk_relay_browser_sessions_host_id_hosts FOREIGN KEY(host_id) REFERENCES hosts (id) ON DELETE CASCADE, 
	CONSTRAINT fk_relay_browser_sessions_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE, 
	CONSTRAINT fk_relay_browser_sessions_auth_session_id_auth_sessions FOREIGN KEY(auth_session_id) REFERENCES auth_sessions (id) ON DELETE CASCADE
);

CREATE INDEX ix_relay_browser_sessions_auth_session_id ON relay_browser_sessions (auth_session_id);

CREATE INDEX ix_relay_browser_sessions_host_id ON relay_browser_sessions (host_id);
