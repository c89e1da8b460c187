--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: agent_relay_host_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.agent_relay_host_keys (
    host_id uuid NOT NULL,
    public_key text NOT NULL,
    pinned_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: agent_relay_schema_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.agent_relay_schema_version (
    id integer NOT NULL,
    version integer NOT NULL,
    CONSTRAINT ck_agent_relay_schema_version_single_row CHECK ((id = 1))
);


--
-- Name: auth_sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_sessions (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    revoked_at timestamp with time zone
);


--
-- Name: hosts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.hosts (
    id uuid NOT NULL,
    owner_user_id uuid NOT NULL,
    shared_with_organization_id uuid,
    machine_id text NOT NULL,
    name text NOT NULL,
    status text DEFAULT 'offline'::text NOT NULL,
    last_seen_at timestamp with time zone,
    agent_version text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ck_hosts_status CHECK ((status = ANY (ARRAY['offline'::text, 'online'::text])))
);


--
-- Name: organization_member_metadata; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.organization_member_metadata (
    organization_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role text DEFAULT 'member'::text NOT NULL,
    joined_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: organizations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.organizations (
    id uuid NOT NULL,
    name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: relay_browser_sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.relay_browser_sessions (
    id uuid NOT NULL,
    host_id uuid NOT NULL,
    user_id uuid NOT NULL,
    auth_session_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    revoked_at timestamp with time zone
);


--
-- Name: users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.users (
    id uuid NOT NULL,
    username text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Data for Name: agent_relay_host_keys; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.agent_relay_host_keys (host_id, public_key, pinned_at) FROM stdin;
e333c263-799f-4290-a1ac-5f5e6c2a0348	kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk	2026-11-30 12:00:14.12347+00
\.


--
-- Data for Name: agent_relay_schema_version; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.agent_relay_schema_version (id, version) FROM stdin;
1	3
\.


--
-- Data for Name: auth_sessions; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.auth_sessions (id, user_id, created_at, last_used_at, revoked_at) FROM stdin;
0df773d3-9490-4b75-90c6-8af02aa31bc9	85aa33dc-6063-4546-9e04-15977df330f1	2026-11-30 12:00:06.123462+00	\N	\N
79ce3239-8427-46c4-9276-96307c469898	85aa33dc-6063-4546-9e04-15977df330f1	2026-11-30 12:00:07.123463+00	\N	2026-11-30 12:00:08.123464+00
996e50ae-0c6b-4636-a5ae-92b64a1bb6b0	1694bf65-83bc-423a-8fda-5bf69ab28243	2026-11-30 12:00:05.123461+00	2026-11-30 12:00:09.123465+00	\N
\.


--
-- Data for Name: hosts; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.hosts (id, owner_user_id, shared_with_organization_id, machine_id, name, status, last_seen_at, agent_version, created_at, updated_at) FROM stdin;
6ec4641e-7c33-40d2-82e7-651697c5d7af	1694bf65-83bc-423a-8fda-5bf69ab28243	\N	machine-2	desk	offline	\N	\N	2026-11-30 12:00:11.123467+00	2026-11-30 12:00:11.123467+00
e333c263-799f-4290-a1ac-5f5e6c2a0348	1694bf65-83bc-423a-8fda-5bf69ab28243	7bba3064-b873-43f8-86d1-31e37d778287	machine-1	laptop	online	2026-11-30 12:00:13.123469+00	1.2.3	2026-11-30 12:00:10.123466+00	2026-11-30 12:00:13.123469+00
\.


--
-- Data for Name: organization_member_metadata; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.organization_member_metadata (organization_id, user_id, role, joined_at) FROM stdin;
7bba3064-b873-43f8-86d1-31e37d778287	85aa33dc-6063-4546-9e04-15977df330f1	member	2026-11-30 12:00:04.12346+00
\.


--
-- Data for Name: organizations; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.organizations (id, name, created_at, updated_at) FROM stdin;
7bba3064-b873-43f8-86d1-31e37d778287	acme	2026-11-30 12:00:03.123459+00	2026-11-30 12:00:03.123459+00
\.


--
-- Data for Name: relay_browser_sessions; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.relay_browser_sessions (id, host_id, user_id, auth_session_id, created_at, last_used_at, revoked_at) FROM stdin;
39cf2556-c012-41b0-8c07-c899483ffa2b	e333c263-799f-4290-a1ac-5f5e6c2a0348	85aa33dc-6063-4546-9e04-15977df330f1	0df773d3-9490-4b75-90c6-8af02aa31bc9	2026-11-30 12:00:15.123471+00	2026-11-30 12:00:16.123472+00	\N
edcab266-4477-4549-9800-311c5c53c5a4	6ec4641e-7c33-40d2-82e7-651697c5d7af	1694bf65-83bc-423a-8fda-5bf69ab28243	996e50ae-0c6b-4636-a5ae-92b64a1bb6b0	2026-11-30 12:00:17.123473+00	\N	2026-11-30 12:00:18.123474+00
\.


--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.users (id, username, created_at, updated_at) FROM stdin;
1694bf65-83bc-423a-8fda-5bf69ab28243	alice	2026-11-30 12:00:01.123457+00	2026-11-30 12:00:01.123457+00
85aa33dc-6063-4546-9e04-15977df330f1	bob	2026-11-30 12:00:02.123458+00	2026-11-30 12:00:02.123458+00
\.


--
-- Name: agent_relay_schema_version agent_relay_schema_version_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_relay_schema_version
    ADD CONSTRAINT agent_relay_schema_version_pkey PRIMARY KEY (id);


--
-- Name: agent_relay_host_keys pk_agent_relay_host_keys; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_relay_host_keys
    ADD CONSTRAINT pk_agent_relay_host_keys PRIMARY KEY (host_id);


--
-- Name: auth_sessions pk_auth_sessions; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_sessions
    ADD CONSTRAINT pk_auth_sessions PRIMARY KEY (id);


--
-- Name: hosts pk_hosts; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.hosts
    ADD CONSTRAINT pk_hosts PRIMARY KEY (id);


--
-- Name: organization_member_metadata pk_organization_member_metadata; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organization_member_metadata
    ADD CONSTRAINT pk_organization_member_metadata PRIMARY KEY (organization_id, user_id);


--
-- Name: organizations pk_organizations; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organizations
    ADD CONSTRAINT pk_organizations PRIMARY KEY (id);


--
-- Name: relay_browser_sessions pk_relay_browser_sessions; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.relay_browser_sessions
    ADD CONSTRAINT pk_relay_browser_sessions PRIMARY KEY (id);


--
-- Name: users pk_users; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT pk_users PRIMARY KEY (id);


--
-- Name: hosts uq_hosts_owner_user_id_machine_id; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.hosts
    ADD CONSTRAINT uq_hosts_owner_user_id_machine_id UNIQUE (owner_user_id, machine_id);


--
-- Name: users uq_users_username; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.users
    ADD CONSTRAINT uq_users_username UNIQUE (username);


--
-- Name: ix_auth_sessions_revoked_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_auth_sessions_revoked_at ON public.auth_sessions USING btree (revoked_at);


--
-- Name: ix_auth_sessions_user_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_auth_sessions_user_id ON public.auth_sessions USING btree (user_id);


--
-- Name: ix_hosts_shared_with_organization_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_hosts_shared_with_organization_id ON public.hosts USING btree (shared_with_organization_id);


--
-- Name: ix_organization_member_metadata_user_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_organization_member_metadata_user_id ON public.organization_member_metadata USING btree (user_id);


--
-- Name: ix_relay_browser_sessions_auth_session_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_relay_browser_sessions_auth_session_id ON public.relay_browser_sessions USING btree (auth_session_id);


--
-- Name: ix_relay_browser_sessions_host_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_relay_browser_sessions_host_id ON public.relay_browser_sessions USING btree (host_id);


--
-- Name: auth_sessions fk_auth_sessions_user_id_users; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_sessions
    ADD CONSTRAINT fk_auth_sessions_user_id_users FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: hosts fk_hosts_owner_user_id_users; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.hosts
    ADD CONSTRAINT fk_hosts_owner_user_id_users FOREIGN KEY (owner_user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: hosts fk_hosts_shared_with_organization_id_organizations; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.hosts
    ADD CONSTRAINT fk_hosts_shared_with_organization_id_organizations FOREIGN KEY (shared_with_organization_id) REFERENCES public.organizations(id) ON DELETE SET NULL;


--
-- Name: organization_member_metadata fk_organization_member_metadata_organization_id_organizations; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organization_member_metadata
    ADD CONSTRAINT fk_organization_member_metadata_organization_id_organizations FOREIGN KEY (organization_id) REFERENCES public.organizations(id) ON DELETE CASCADE;


--
-- Name: organization_member_metadata fk_organization_member_metadata_user_id_users; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.organization_member_metadata
    ADD CONSTRAINT fk_organization_member_metadata_user_id_users FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- Name: relay_browser_sessions fk_relay_browser_sessions_auth_session_id_auth_sessions; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.relay_browser_sessions
    ADD CONSTRAINT fk_relay_browser_sessions_auth_session_id_auth_sessions FOREIGN KEY (auth_session_id) REFERENCES public.auth_sessions(id) ON DELETE CASCADE;


--
-- Name: relay_browser_sessions fk_relay_browser_sessions_host_id_hosts; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.relay_browser_sessions
    ADD CONSTRAINT fk_relay_browser_sessions_host_id_hosts FOREIGN KEY (host_id) REFERENCES public.hosts(id) ON DELETE CASCADE;


--
-- Name: relay_browser_sessions fk_relay_browser_sessions_user_id_users; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.relay_browser_sessions
    ADD CONSTRAINT fk_relay_browser_sessions_user_id_users FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


