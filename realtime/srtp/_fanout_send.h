/*
 * realtime.srtp._fanout.Sender: one subscriber's whole in-order copy in one C call.
 *
 * Included by _fanout.c (it uses copy_one and renumber_vp8 from there).
 *
 * realtime/sfu/sendpath.py binds, per subscription, a Python closure that
 * takes the common case of the fan-out -- the packet continues the current
 * segment in order, its payload type is mapped, the subscriber is connected
 * over a PeerConnection with a selected address -- straight through, and
 * hands every other case to the reference (Forwarder.forward, send_rtp).
 * At 100 subscribers that closure's own bytecode was the largest single
 * part of a forwarded packet's CPU (docs/performance.md, fifth round).  A
 * Sender is the same closure's in-order branch with the C helper, in C:
 *
 *     decide (nothing written yet)           any "no": call the Python send path
 *         session.connection is a PeerConnection with an SRTP session;
 *         the packet is bytes of >= 12 octets from the forwarder's source;
 *         no temporal filter active; 0 < seq - _in_highest <= MAX_JUMP
 *         (RFC 3550 A.1's in-order case); the PT is mapped; ICE has a
 *         selected address; the plan's template is this packet's, fits
 *         SRTP and has the transport-cc placeholder when stamping
 *     write, in sendpath's order, the same Python attributes
 *         Forwarder: _in_highest, _span, _seen, _out_ext, _out_ts, _last_time,
 *                    forwarded; VP8 last_packet / last_offset (RFC 7741 §4.2);
 *         SenderStatistics (RFC 3550 §6.4.1); the transport-wide number:
 *         SubscriberEstimate.stamp_next's bookkeeping (stamped, and the ring's
 *         three arrays) written here as that method writes it, or the method
 *         itself called where the ring is not the expected three arrays
 *     copy_one (template, header, VP8, stamp, srtp_protect) -> bytes
 *     append (bytes, address) to the connection's queue; touched.add(session)
 *
 * So Python keeps every piece of state (the reference path and the RTCP
 * legs read the same attributes); this file only spares the interpreter's
 * dispatch of ~60 bytecodes per copy.  When the decision is "no" nothing has
 * been written and the Python send path runs the packet from the start, so
 * a Sender and its closure are interchangeable packet by packet; the tests
 * (tests/sfu/test_sendpath.py) compare both with the reference.
 */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback;           /* the Python send path (sendpath.bind_send_path's closure) */
    PyObject *forwarder;
    PyObject *session;
    PyObject *template;           /* sendpath._Template of the forwarder's plan */
    PyObject *plan;               /* the forwarder's ExtensionPlan */
    PyObject *payload_types;      /* dict or None */
    PyObject *vp8;                /* Vp8Renumbering or None */
    PyObject *vp8_payload_types;  /* frozenset */
    PyObject *sender;             /* SenderStatistics */
    PyObject *stamp_next;         /* SubscriberEstimate.stamp_next or None */
    PyObject *estimate;           /* its estimate and ring arrays ('d', 'H', 'l'), or NULL */
    PyObject *ring_sent, *ring_sizes, *ring_seqs;
    long long ring_mask;
    PyObject *temporal;           /* TemporalFilter or None */
    PyObject *touched;            /* the session's set */
    PyObject *peer_type;          /* PeerConnection */
    PyObject *window_mask;        /* forwarder._WINDOW_MASK */
    PyObject *srtp;               /* the SrtpSession last seen, and its srtp_t */
    void *srtp_address;
    PyObject *connection;         /* the PeerConnection last seen, and its ICE agent */
    PyObject *ice;
    PyObject *made_for;           /* the packet the template fields below were read for */
    PyObject *octets;             /* template.octets */
    long long head, payload, stamp_at;
    int fits;
    unsigned long ssrc;
    long max_jump;
} Sender;

static PyObject *s_connection, *s_srtp, *s_source, *s_active, *s_in_highest, *s_span, *s_seen,
    *s_out_ext, *s_out_ts, *s_last_time, *s_forwarded, *s_seq_delta, *s_ts_delta,
    *s_picture_delta, *s_tl0_delta, *s_last_packet, *s_last_offset, *s_packet_count,
    *s_octet_count, *s_last_rtp_timestamp, *s_last_send_time, *s_fast_protect, *s_address,
    *s_ice, *s_selected_address, *s_outgoing, *s_packet, *s_octets, *s_head, *s_payload,
    *s_stamp_at, *s_fits, *s_refresh, *s_stamped, *one;

static int
intern_names(void)
{
#define NAME(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return -1
    NAME(s_connection, "connection"); NAME(s_srtp, "srtp"); NAME(s_source, "source");
    NAME(s_active, "active"); NAME(s_in_highest, "_in_highest"); NAME(s_span, "_span");
    NAME(s_seen, "_seen"); NAME(s_out_ext, "_out_ext"); NAME(s_out_ts, "_out_ts");
    NAME(s_last_time, "_last_time"); NAME(s_forwarded, "forwarded");
    NAME(s_seq_delta, "_seq_delta"); NAME(s_ts_delta, "_ts_delta");
    NAME(s_picture_delta, "picture_delta"); NAME(s_tl0_delta, "tl0_delta");
    NAME(s_last_packet, "last_packet"); NAME(s_last_offset, "last_offset");
    NAME(s_packet_count, "packet_count"); NAME(s_octet_count, "octet_count");
    NAME(s_last_rtp_timestamp, "last_rtp_timestamp"); NAME(s_last_send_time, "last_send_time");
    NAME(s_fast_protect, "fast_protect"); NAME(s_address, "address"); NAME(s_ice, "ice");
    NAME(s_selected_address, "selected_address"); NAME(s_outgoing, "_outgoing");
    NAME(s_packet, "packet"); NAME(s_octets, "octets"); NAME(s_head, "head");
    NAME(s_payload, "payload"); NAME(s_stamp_at, "stamp_at"); NAME(s_fits, "fits");
    NAME(s_refresh, "refresh"); NAME(s_stamped, "stamped");
#undef NAME
    one = PyLong_FromLong(1);
    return one == NULL ? -1 : 0;
}

/* obj.name as a C long long (0 on success, -1 with an exception). */
static int
get_ll(PyObject *obj, PyObject *name, long long *out)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL)
        return -1;
    long long v = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

/* obj.name = v */
static int
set_ll(PyObject *obj, PyObject *name, long long v)
{
    PyObject *value = PyLong_FromLongLong(v);
    if (value == NULL)
        return -1;
    int result = PyObject_SetAttr(obj, name, value);
    Py_DECREF(value);
    return result;
}

/* obj.name += d; masked with `mask` unless it is 0 */
static int
add_ll(PyObject *obj, PyObject *name, long long d, long long mask)
{
    long long v;
    if (get_ll(obj, name, &v) < 0)
        return -1;
    v += d;
    return set_ll(obj, name, mask ? (v & mask) : v);
}

/* f._seen = (f._seen << d | 1) & _WINDOW_MASK (Python ints of the window's width) */
static int
shift_window(PyObject *f, long d, PyObject *mask)
{
    PyObject *seen = PyObject_GetAttr(f, s_seen), *shift = NULL, *a = NULL, *b = NULL, *c = NULL;
    int result = -1;
    if (seen == NULL || (shift = PyLong_FromLong(d)) == NULL
            || (a = PyNumber_Lshift(seen, shift)) == NULL || (b = PyNumber_Or(a, one)) == NULL
            || (c = PyNumber_And(b, mask)) == NULL)
        goto done;
    result = PyObject_SetAttr(f, s_seen, c);
done:
    Py_XDECREF(seen); Py_XDECREF(shift); Py_XDECREF(a); Py_XDECREF(b); Py_XDECREF(c);
    return result;
}

/* One slot of the estimate's ring: _sent[slot] = now, _sizes[slot] = size, _seqs[slot] = seq. */
static int
ring_store(Sender *self, long long slot, double now, Py_ssize_t size, long long seq)
{
    if (now == -1.0 && PyErr_Occurred())
        return -1;
    Py_buffer b;
    int ok;
    if (PyObject_GetBuffer(self->ring_sent, &b, PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
        return -1;
    ok = b.itemsize == sizeof(double) && (slot + 1) * (long long)sizeof(double) <= b.len;
    if (ok)
        ((double *)b.buf)[slot] = now;
    PyBuffer_Release(&b);
    if (!ok || PyObject_GetBuffer(self->ring_sizes, &b, PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
        goto bad;
    ok = b.itemsize == sizeof(unsigned short) && size <= 0xFFFF
        && (slot + 1) * (long long)sizeof(unsigned short) <= b.len;
    if (ok)
        ((unsigned short *)b.buf)[slot] = (unsigned short)size;
    PyBuffer_Release(&b);
    if (!ok || PyObject_GetBuffer(self->ring_seqs, &b, PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
        goto bad;
    ok = b.itemsize == sizeof(long) && (slot + 1) * (long long)sizeof(long) <= b.len;
    if (ok)
        ((long *)b.buf)[slot] = (long)seq;
    PyBuffer_Release(&b);
    if (ok)
        return 0;
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "Sender: the transport-wide ring changed shape");
    return -1;
}

/* The in-order copy (see the comment at the top).  Returns 1 when sent (*size set),
 * 0 when the Python send path must take the packet (nothing written), -1 on error. */
static int
sender_copy(Sender *self, PyObject *packet, PyObject *source, PyObject *now, long long *size_out)
{
    PyObject *f = self->forwarder;
    PyObject *conn = NULL, *srtp = NULL, *x = NULL, *ice = NULL, *addr = NULL, *octets = NULL;
    PyObject *data = NULL, *item = NULL, *outgoing = NULL;
    int result = -1;
    long long highest, stamp_at, head, payload, ts_delta, seq_delta, number = 0;
    long mapped;

    if ((conn = PyObject_GetAttr(self->session, s_connection)) == NULL)
        goto done;
    if ((PyObject *)Py_TYPE(conn) != self->peer_type)       /* None, or another kind */
        goto fallback;
    if ((srtp = PyObject_GetAttr(conn, s_srtp)) == NULL)
        goto done;
    if (srtp == Py_None || !PyBytes_CheckExact(packet) || PyBytes_GET_SIZE(packet) < 12)
        goto fallback;
    if ((x = PyObject_GetAttr(f, s_source)) == NULL)
        goto done;
    if (x != source)
        goto fallback;
    Py_CLEAR(x);
    if (self->temporal != Py_None) {   /* a temporal layer being filtered: the reference */
        if ((x = PyObject_GetAttr(self->temporal, s_active)) == NULL)
            goto done;
        int active = PyObject_IsTrue(x);
        if (active < 0)
            goto done;
        if (active)
            goto fallback;
        Py_CLEAR(x);
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(packet);
    long seq = (long)p[2] << 8 | p[3];
    unsigned long ts = (unsigned long)p[4] << 24 | (unsigned long)p[5] << 16
        | (unsigned long)p[6] << 8 | p[7];
    if (get_ll(f, s_in_highest, &highest) < 0)
        goto done;
    long d = (long)((seq - highest) & 0xFFFF);
    if (d == 0 || d > self->max_jump)   /* duplicate, late or a restart */
        goto fallback;
    long pt = p[1] & 0x7F;
    if (self->payload_types != Py_None) {
        if ((x = PyLong_FromLong(pt)) == NULL)
            goto done;
        PyObject *value = PyDict_GetItemWithError(self->payload_types, x);   /* borrowed */
        if (value == NULL) {
            if (PyErr_Occurred())
                goto done;
            goto fallback;
        }
        mapped = PyLong_AsLong(value);
        if (mapped == -1 && PyErr_Occurred())
            goto done;
        Py_CLEAR(x);
    } else {
        mapped = pt;
    }
    if (conn != self->connection) {   /* its ICE agent is the connection's for life */
        if ((ice = PyObject_GetAttr(conn, s_ice)) == NULL)
            goto done;
        Py_INCREF(conn);
        Py_XSETREF(self->connection, conn);
        Py_XSETREF(self->ice, ice);
        ice = NULL;
    }
    if ((addr = PyObject_GetAttr(self->ice, s_selected_address)) == NULL)
        goto done;
    if (addr == Py_None)
        goto fallback;
    /* the plan's template: made once per packet by the first copy of any subscriber of
     * the plan.  A packet it cannot rewrite goes to the Python path, which writes what
     * the reference writes before it raises the same error. */
    if ((x = PyObject_GetAttr(self->template, s_packet)) == NULL)
        goto done;
    if (x != packet) {
        Py_CLEAR(x);
        PyObject *args[3] = {self->template, self->plan, packet};
        x = PyObject_VectorcallMethod(s_refresh, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (x == NULL) {
            PyErr_Clear();
            goto fallback;
        }
    }
    Py_CLEAR(x);
    if (packet != self->made_for) {   /* the template's fields, read once per packet */
        Py_CLEAR(self->made_for);
        Py_CLEAR(self->octets);
        if ((x = PyObject_GetAttr(self->template, s_fits)) == NULL)
            goto done;
        self->fits = PyObject_IsTrue(x);
        if (self->fits < 0 || get_ll(self->template, s_stamp_at, &self->stamp_at) < 0
                || get_ll(self->template, s_head, &self->head) < 0
                || get_ll(self->template, s_payload, &self->payload) < 0
                || (self->octets = PyObject_GetAttr(self->template, s_octets)) == NULL)
            goto done;
        Py_CLEAR(x);
        if (!PyBytes_CheckExact(self->octets) || self->head < 12
                || self->head > PyBytes_GET_SIZE(self->octets)) {
            PyErr_SetString(PyExc_ValueError, "Sender: a template that is not a packet");
            Py_CLEAR(self->octets);
            goto done;
        }
        Py_INCREF(packet);
        self->made_for = packet;
    }
    stamp_at = self->stamp_at;
    if (!self->fits || (self->stamp_next != Py_None && stamp_at < 0))
        goto fallback;

    /* decided: from here on the same writes as sendpath's closure, in its order */
    if (set_ll(f, s_in_highest, seq) < 0 || add_ll(f, s_span, d, 0) < 0
            || shift_window(f, d, self->window_mask) < 0 || add_ll(f, s_out_ext, d, 0) < 0
            || get_ll(f, s_ts_delta, &ts_delta) < 0)
        goto done;
    unsigned long out_ts = (unsigned long)(((long long)ts + ts_delta) & 0xFFFFFFFFLL);
    if (set_ll(f, s_out_ts, out_ts) < 0 || PyObject_SetAttr(f, s_last_time, now) < 0
            || add_ll(f, s_forwarded, 1, 0) < 0)
        goto done;
    octets = self->octets;
    Py_INCREF(octets);
    head = self->head;
    payload = self->payload;
    Py_ssize_t size = PyBytes_GET_SIZE(octets);
    Py_ssize_t vp8_at = -1;
    long long picture_delta = 0, tl0_delta = 0;
    if (self->vp8 != Py_None) {
        if ((x = PyLong_FromLong(pt)) == NULL)
            goto done;
        int is_vp8 = PySequence_Contains(self->vp8_payload_types, x);
        if (is_vp8 < 0)
            goto done;
        Py_CLEAR(x);
        if (is_vp8) {
            if (get_ll(self->vp8, s_picture_delta, &picture_delta) < 0
                    || get_ll(self->vp8, s_tl0_delta, &tl0_delta) < 0)
                goto done;
            if (picture_delta || tl0_delta) {   /* what switch() reads: the fields as sent */
                if ((x = PyByteArray_FromStringAndSize(PyBytes_AS_STRING(octets), size)) == NULL)
                    goto done;
                renumber_vp8((unsigned char *)PyByteArray_AS_STRING(x), size, (Py_ssize_t)head,
                             (long)picture_delta, (long)tl0_delta);
                if (PyObject_SetAttr(self->vp8, s_last_packet, x) < 0)
                    goto done;
                Py_CLEAR(x);
                vp8_at = (Py_ssize_t)head;
            } else if (PyObject_SetAttr(self->vp8, s_last_packet, octets) < 0) {
                goto done;
            }
            if (set_ll(self->vp8, s_last_offset, head) < 0)
                goto done;
        }
    }
    PyObject *stats = self->sender;
    if (add_ll(stats, s_packet_count, 1, 0xFFFFFFFFLL) < 0
            || add_ll(stats, s_octet_count, payload, 0xFFFFFFFFLL) < 0
            || set_ll(stats, s_last_rtp_timestamp, out_ts) < 0
            || PyObject_SetAttr(stats, s_last_send_time, now) < 0)
        goto done;
    if (self->estimate != NULL) {   /* stamp_next(size, now), in its order */
        long long count;
        if (get_ll(self->estimate, s_stamped, &count) < 0
                || set_ll(self->estimate, s_stamped, count + 1) < 0)
            goto done;
        number = count & 0xFFFF;
        if (ring_store(self, count & self->ring_mask, PyFloat_AsDouble(now), size, number) < 0)
            goto done;
    } else if (self->stamp_next != Py_None) {
        PyObject *args[2] = {NULL, now};
        if ((args[0] = PyLong_FromSsize_t(size)) == NULL)
            goto done;
        x = PyObject_Vectorcall(self->stamp_next, args, 2, NULL);
        Py_DECREF(args[0]);
        if (x == NULL)
            goto done;
        number = PyLong_AsLongLong(x);
        if (number == -1 && PyErr_Occurred())
            goto done;
        Py_CLEAR(x);
    } else {
        stamp_at = -1;
    }
    if (srtp != self->srtp) {   /* a new SRTP session: its srtp_t (realtime.srtp.fast) */
        PyObject *fast = PyObject_GetAttr(srtp, s_fast_protect);
        if (fast == NULL)
            goto done;
        x = PyObject_GetAttr(fast, s_address);
        Py_DECREF(fast);
        if (x == NULL)
            goto done;
        void *address = PyLong_AsVoidPtr(x);
        if (address == NULL && PyErr_Occurred())
            goto done;
        Py_CLEAR(x);
        Py_INCREF(srtp);
        Py_XSETREF(self->srtp, srtp);
        self->srtp_address = address;
    }
    if (get_ll(f, s_seq_delta, &seq_delta) < 0)
        goto done;
    data = copy_one(self->srtp_address, octets, (unsigned long)((seq + seq_delta) & 0xFFFF),
                    out_ts, self->ssrc, (unsigned long)mapped, vp8_at, (long)picture_delta,
                    (long)tl0_delta, (Py_ssize_t)stamp_at, (unsigned long)number);
    if (data == NULL || (item = PyTuple_Pack(2, data, addr)) == NULL
            || (outgoing = PyObject_GetAttr(conn, s_outgoing)) == NULL)
        goto done;
    if (!PyList_CheckExact(outgoing)) {
        PyErr_SetString(PyExc_TypeError, "Sender: the connection's queue is not a list");
        goto done;
    }
    if (PyList_Append(outgoing, item) < 0 || PySet_Add(self->touched, self->session) < 0)
        goto done;
    *size_out = size;
    result = 1;
    goto done;
fallback:
    result = 0;
done:
    Py_XDECREF(conn); Py_XDECREF(srtp); Py_XDECREF(x); Py_XDECREF(ice); Py_XDECREF(addr);
    Py_XDECREF(octets); Py_XDECREF(data); Py_XDECREF(item); Py_XDECREF(outgoing);
    return result;
}

static PyObject *
sender_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Sender *self = (Sender *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs == 4 && kwnames == NULL) {
        long long size = 0;
        int sent = sender_copy(self, args[0], args[1], args[3], &size);
        if (sent < 0)
            return NULL;
        if (sent > 0)
            return PyLong_FromLongLong(size);
    }
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static int
sender_traverse(Sender *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback); Py_VISIT(self->forwarder); Py_VISIT(self->session);
    Py_VISIT(self->template); Py_VISIT(self->plan); Py_VISIT(self->payload_types); Py_VISIT(self->vp8);
    Py_VISIT(self->vp8_payload_types); Py_VISIT(self->sender); Py_VISIT(self->stamp_next);
    Py_VISIT(self->temporal); Py_VISIT(self->touched); Py_VISIT(self->peer_type);
    Py_VISIT(self->window_mask); Py_VISIT(self->srtp); Py_VISIT(self->connection);
    Py_VISIT(self->ice); Py_VISIT(self->made_for); Py_VISIT(self->octets);
    Py_VISIT(self->estimate); Py_VISIT(self->ring_sent); Py_VISIT(self->ring_sizes);
    Py_VISIT(self->ring_seqs);
    return 0;
}

static int
sender_clear(Sender *self)
{
    Py_CLEAR(self->fallback); Py_CLEAR(self->forwarder); Py_CLEAR(self->session);
    Py_CLEAR(self->template); Py_CLEAR(self->plan); Py_CLEAR(self->payload_types); Py_CLEAR(self->vp8);
    Py_CLEAR(self->vp8_payload_types); Py_CLEAR(self->sender); Py_CLEAR(self->stamp_next);
    Py_CLEAR(self->temporal); Py_CLEAR(self->touched); Py_CLEAR(self->peer_type);
    Py_CLEAR(self->window_mask); Py_CLEAR(self->srtp); Py_CLEAR(self->connection);
    Py_CLEAR(self->ice); Py_CLEAR(self->made_for); Py_CLEAR(self->octets);
    Py_CLEAR(self->estimate); Py_CLEAR(self->ring_sent); Py_CLEAR(self->ring_sizes);
    Py_CLEAR(self->ring_seqs);
    return 0;
}

static void
sender_dealloc(Sender *self)
{
    PyObject_GC_UnTrack(self);
    sender_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "realtime.srtp._fanout.Sender",
    .tp_basicsize = sizeof(Sender),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "One subscriber's in-order copy in one call (see _fanout_send.h); "
              "made by configure_sender().",
    .tp_vectorcall_offset = offsetof(Sender, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)sender_traverse,
    .tp_clear = (inquiry)sender_clear,
    .tp_dealloc = (destructor)sender_dealloc,
};

PyDoc_STRVAR(configure_sender_doc,
"configure_sender(fallback, forwarder, session, template, plan, payload_types, ssrc, vp8,\n"
"                 vp8_payload_types, sender, stamp_next, temporal, touched, peer_type,\n"
"                 window_mask, max_jump, ring) -> Sender\n\n"
"``ring``: (estimate, sent, sizes, seqs) -- stamp_next's bookkeeping done in C on\n"
"those arrays ('d', 'H', 'l', one power-of-two length) -- or None to call stamp_next.\n"
"Return ``send(packet, source, keyframe, now) -> int`` doing the in-order copy in C and\n"
"calling ``fallback`` (the same signature) for every other case (see _fanout_send.h).");

static PyObject *
fanout_configure_sender(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 17) {
        PyErr_SetString(PyExc_TypeError, "configure_sender() takes 17 arguments");
        return NULL;
    }
    if (protect == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_sender() before bind()");
        return NULL;
    }
    if (!PyCallable_Check(args[0]) || (args[5] != Py_None && !PyDict_Check(args[5]))
            || !PyAnySet_Check(args[12]) || !PyType_Check(args[13]) || !PyLong_Check(args[14])) {
        PyErr_SetString(PyExc_TypeError,
                        "configure_sender(): a callable fallback, a dict of payload types, "
                        "a set, a type and an int mask");
        return NULL;
    }
    unsigned long ssrc = PyLong_AsUnsignedLongMask(args[6]);
    long max_jump = PyLong_AsLong(args[15]);
    if (PyErr_Occurred())
        return NULL;
    Sender *self = PyObject_GC_New(Sender, &SenderType);
    if (self == NULL)
        return NULL;
    self->vectorcall = sender_vectorcall;
    PyObject **fields[] = {&self->fallback, &self->forwarder, &self->session, &self->template,
                           &self->plan, &self->payload_types, NULL, &self->vp8,
                           &self->vp8_payload_types, &self->sender, &self->stamp_next,
                           &self->temporal, &self->touched, &self->peer_type, &self->window_mask};
    for (Py_ssize_t i = 0; i < 15; i++) {
        if (fields[i] != NULL) {
            Py_INCREF(args[i]);
            *fields[i] = args[i];
        }
    }
    self->srtp = NULL;
    self->srtp_address = NULL;
    self->connection = self->ice = self->made_for = self->octets = NULL;
    self->head = self->payload = self->stamp_at = 0;
    self->fits = 0;
    self->estimate = self->ring_sent = self->ring_sizes = self->ring_seqs = NULL;
    self->ring_mask = 0;
    PyObject *ring = args[16];
    if (ring != Py_None) {
        Py_ssize_t length = -1;
        int ok = PyTuple_Check(ring) && PyTuple_GET_SIZE(ring) == 4;
        for (Py_ssize_t i = 1; ok && i < 4; i++) {
            Py_ssize_t n = PyObject_Size(PyTuple_GET_ITEM(ring, i));
            ok = n > 0 && (n & (n - 1)) == 0 && (length < 0 || n == length);
            length = n;
        }
        if (!ok) {
            PyErr_Clear();
            Py_DECREF(self);
            PyErr_SetString(PyExc_ValueError,
                            "configure_sender(): ring is (estimate, three arrays of one length)");
            return NULL;
        }
        PyObject **ring_fields[] = {&self->estimate, &self->ring_sent, &self->ring_sizes,
                                    &self->ring_seqs};
        for (Py_ssize_t i = 0; i < 4; i++) {
            Py_INCREF(PyTuple_GET_ITEM(ring, i));
            *ring_fields[i] = PyTuple_GET_ITEM(ring, i);
        }
        self->ring_mask = length - 1;
    }
    self->ssrc = ssrc & 0xFFFFFFFFUL;
    self->max_jump = max_jump;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}
