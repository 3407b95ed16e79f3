/*
 * A stand-in for libgupnp-igd-1.0.so.4, for running Debian bookworm's
 * simple-whip-client (tests/interop/test_whip.py, bench/whip.py).
 *
 * Why: /usr/bin/whip-client links libsoup 2.4; libnice links gupnp-igd,
 * which links gupnp 1.6 and so libsoup 3; libsoup aborts a process that
 * holds both ("libsoup2 symbols detected").  libnice uses gupnp-igd only to
 * ask a UPnP Internet Gateway Device for port mappings, which has no use
 * on loopback.  This library exports the four symbols libnice imports
 * (nm -D libnice.so.10 | grep gupnp) and a GObject type carrying the two
 * signals libnice connects to; adding a port answers at once, from the
 * creator's main context, with "error-mapping-port" (no gateway), so
 * libnice stops waiting for a mapping; removing a port does nothing.
 *
 * No GLib headers are installed on the test machines: the few GLib/GObject
 * declarations used are written out below (stable ABI of GLib 2.x, x86-64
 * and other LP64/ILP32 Linux targets alike).
 *
 * Build: scripts/build-gupnp-igd-stub DIR
 */
#include <pthread.h>
#include <stddef.h>

typedef unsigned long GType;               /* gsize */
typedef unsigned int guint;
typedef int gint;
typedef int gboolean;
typedef char gchar;
typedef void *gpointer;
typedef struct { unsigned int domain; int code; char *message; } GError;
typedef struct { GType type; const gchar *type_name; guint class_size; guint instance_size; } GTypeQuery;
typedef gboolean (*GSourceFunc)(gpointer);

#define G_TYPE_NONE ((GType) (1 << 2))
#define G_TYPE_UINT ((GType) (7 << 2))
#define G_TYPE_STRING ((GType) (16 << 2))
#define G_TYPE_OBJECT ((GType) (20 << 2))
#define G_SIGNAL_RUN_LAST (1 << 1)

extern void g_type_query(GType type, GTypeQuery *query);
extern GType g_type_register_static_simple(GType parent, const gchar *name, guint class_size,
                                           void (*class_init)(gpointer, gpointer),
                                           guint instance_size,
                                           void (*instance_init)(gpointer, gpointer),
                                           guint flags);
extern guint g_signal_new(const gchar *name, GType itype, guint flags, guint class_offset,
                          gpointer accumulator, gpointer accu_data, gpointer marshaller,
                          GType return_type, guint n_params, ...);
extern void g_signal_emit(gpointer instance, guint signal_id, unsigned int detail, ...);
extern gpointer g_object_new(GType type, const gchar *first_property, ...);
extern gpointer g_object_ref(gpointer object);
extern void g_object_unref(gpointer object);
extern GType g_error_get_type(void);
extern GError *g_error_new_literal(unsigned int domain, gint code, const gchar *message);
extern void g_error_free(GError *error);
extern unsigned int g_quark_from_static_string(const gchar *string);
extern gpointer g_main_context_ref_thread_default(void);
extern void g_main_context_unref(gpointer context);
extern void g_main_context_invoke_full(gpointer context, gint priority, GSourceFunc function,
                                       gpointer data, void (*notify)(gpointer));
extern gchar *g_strdup(const gchar *s);
extern void g_free(gpointer p);
extern gpointer g_malloc0(size_t n);
extern gpointer g_object_get_data(gpointer object, const gchar *key);
extern void g_object_set_data_full(gpointer object, const gchar *key, gpointer data,
                                   void (*destroy)(gpointer));

static GType igd_type;
static GType igd_thread_type;
static guint signal_mapped, signal_error;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
class_init(gpointer klass, gpointer data)
{
    (void) klass;
    (void) data;
}

static void
register_types(void)
{
    GTypeQuery object;
    g_type_query(G_TYPE_OBJECT, &object);
    igd_type = g_type_register_static_simple(G_TYPE_OBJECT, "GUPnPSimpleIgd", object.class_size,
                                             class_init, object.instance_size, NULL, 0);
    /* (proto, external_ip, replaces_external_ip, external_port, local_ip, local_port, description) */
    signal_mapped = g_signal_new("mapped-external-port", igd_type, G_SIGNAL_RUN_LAST, 0, NULL,
                                 NULL, NULL, G_TYPE_NONE, 7, G_TYPE_STRING, G_TYPE_STRING,
                                 G_TYPE_STRING, G_TYPE_UINT, G_TYPE_STRING, G_TYPE_UINT,
                                 G_TYPE_STRING);
    /* (error, proto, external_port, local_ip, local_port, description) */
    signal_error = g_signal_new("error-mapping-port", igd_type, G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                                NULL, G_TYPE_NONE, 6, g_error_get_type(), G_TYPE_STRING,
                                G_TYPE_UINT, G_TYPE_STRING, G_TYPE_UINT, G_TYPE_STRING);
    igd_thread_type = g_type_register_static_simple(igd_type, "GUPnPSimpleIgdThread",
                                                    object.class_size, class_init,
                                                    object.instance_size, NULL, 0);
}

GType
gupnp_simple_igd_get_type(void)
{
    pthread_once(&once, register_types);
    return igd_type;
}

gpointer
gupnp_simple_igd_thread_new(void)
{
    pthread_once(&once, register_types);
    gpointer self = g_object_new(igd_thread_type, NULL);
    /* signals are delivered in the main context of the thread that made us */
    g_object_set_data_full(self, "stub-context", g_main_context_ref_thread_default(),
                           g_main_context_unref);
    return self;
}

struct refusal {
    gpointer self;
    gchar *proto, *local_ip, *description;
    guint external_port, local_port;
};

static gboolean
refuse(gpointer data)
{
    struct refusal *r = data;
    GError *error = g_error_new_literal(g_quark_from_static_string("gupnp-simple-igd-error"), 0,
                                        "no UPnP gateway (stand-in library)");
    g_signal_emit(r->self, signal_error, 0, error, r->proto, r->external_port, r->local_ip,
                  r->local_port, r->description);
    g_error_free(error);
    return 0;
}

static void
refusal_free(gpointer data)
{
    struct refusal *r = data;
    g_object_unref(r->self);
    g_free(r->proto);
    g_free(r->local_ip);
    g_free(r->description);
    g_free(r);
}

void
gupnp_simple_igd_add_port(gpointer self, const gchar *protocol, guint external_port,
                          const gchar *local_ip, guint local_port, guint lease_duration,
                          const gchar *description)
{
    (void) lease_duration;
    struct refusal *r = g_malloc0(sizeof *r);
    r->self = g_object_ref(self);
    r->proto = g_strdup(protocol);
    r->local_ip = g_strdup(local_ip);
    r->description = g_strdup(description);
    r->external_port = external_port;
    r->local_port = local_port;
    g_main_context_invoke_full(g_object_get_data(self, "stub-context"), 0, refuse, r,
                               refusal_free);
}

void
gupnp_simple_igd_remove_port_local(gpointer self, const gchar *protocol, const gchar *local_ip,
                                   guint local_port)
{
    (void) self;
    (void) protocol;
    (void) local_ip;
    (void) local_port;
}
