#!/usr/bin/env node
// An OCPP 2.1 charging station built on ocpp-rpc (an implementation we did not write),
// so that the tests can drive the controller's CSMS with somebody else's reading of
// OCPP-J and of the OCPP JSON schemas (strict mode: every call and result, both ways,
// is checked against them).
//
//   node station.js --url ws://127.0.0.1:PORT/ocpp --identity ID --password PW
//                   [--protocol ocpp2.1] [--scenario v2x|bad]
//
// ocpp-rpc connects to URL/ID. Everything that happens is one JSON object per line on
// stdout (see emit() calls: connected, sent, call_result, call_error,
// strict_validation_failure, received, answered, setpoint, bad_call, scenario_done,
// error, closed). Diagnostics go to stderr. SIGTERM/SIGINT close the connection.
'use strict';

const { randomUUID } = require('crypto');
const { setTimeout: sleep } = require('timers/promises');
const { RPCClient, TimeoutError, createValidator } = require('ocpp-rpc');

function emit(event, fields = {}) {
    process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function parseArgs(argv) {
    const args = { protocol: 'ocpp2.1', scenario: 'v2x' };
    const known = new Set(['url', 'identity', 'password', 'protocol', 'scenario']);
    for (let i = 0; i < argv.length; i += 2) {
        const name = argv[i].replace(/^--/, '');
        if (!known.has(name) || argv[i + 1] === undefined) {
            throw new Error(`argument ${argv[i]}: unknown or missing its value`);
        }
        args[name] = argv[i + 1];
    }
    for (const name of ['url', 'identity']) {
        if (!args[name]) throw new Error(`argument --${name}: required`);
    }
    if (!['ocpp2.1', 'ocpp2.0.1', 'ocpp1.6'].includes(args.protocol)) {
        throw new Error(`argument --protocol: ${args.protocol}: not one of ocpp2.1, ocpp2.0.1, ocpp1.6`);
    }
    if (!SCENARIOS[args.scenario]) {
        throw new Error(`argument --scenario: ${args.scenario}: not one of ${Object.keys(SCENARIOS)}`);
    }
    return args;
}

// ocpp-rpc 2.2.1 ships the OCPP 2.1 schemas with ids `urn:XRequest` / `urn:XResponse`
// but looks them up as `urn:X.req` / `urn:X.conf` (as for 1.6 and 2.0.1), so its stock
// 2.1 validator finds no schema. The same schemas, renamed, make strict mode work.
function ocpp21Validator() {
    const schemas = require('ocpp-rpc/lib/schemas/ocpp2_1.json').map((schema) => ({
        ...schema,
        $id: schema.$id.replace(/Request$/, '.req').replace(/Response$/, '.conf'),
    }));
    return createValidator('ocpp2.1', schemas);
}

function errorFields(err) {
    return { code: err.rpcErrorCode ?? err.name, message: err.message, details: err.details ?? {} };
}

const now = () => new Date().toISOString();

// The station's state: the EV on evse 1 connector 1, the setpoint it follows, the
// charging profiles it holds and the few device-model variables it answers for.
class Station {
    constructor(client) {
        this.client = client;
        this.transactionId = null;
        this.setpointW = 0; // OCPP sign: positive charges the EV, negative discharges it
        this.socPercent = 80;
        this.capacityWh = 77400;
        this.voltageV = 400;
        this.frequencyHz = 50;
        this.profiles = new Map(); // id -> {profile, evseId, receivedAt}
        this.heartbeatTimer = null;
        this.variables = new Map([
            ['OCPPCommCtrlr/HeartbeatInterval', '60'],
            ['SampledDataCtrlr/TxUpdatedInterval', '0.5'],
            ['SmartChargingCtrlr/Enabled', 'true'],
            ['ChargingStation/Available', 'true'],
        ]);
    }

    async call(method, params, options = {}) {
        emit('sent', { method, params });
        try {
            const payload = await this.client.call(method, params, options);
            emit('call_result', { method, payload });
            return payload;
        } catch (err) {
            emit('call_error', { method, ...errorFields(err) });
            return null;
        }
    }

    startHeartbeat(intervalS) {
        clearInterval(this.heartbeatTimer);
        this.variables.set('OCPPCommCtrlr/HeartbeatInterval', String(intervalS));
        if (intervalS > 0) {
            this.heartbeatTimer = setInterval(() => this.call('Heartbeat', {}), intervalS * 1000);
        }
    }

    follow(setpointW, from) {
        this.setpointW = setpointW;
        emit('setpoint', { watts: setpointW, from });
    }

    // The setpoint of the profile's period in effect now (Dynamic profiles start when
    // received), in W; A is converted at the pack voltage. Falls back on the limit.
    profileSetpoint({ profile, receivedAt }) {
        const schedule = profile.chargingSchedule[0];
        const start = schedule.startSchedule ? Date.parse(schedule.startSchedule) : receivedAt;
        const elapsedS = (Date.now() - start) / 1000;
        const periods = [...schedule.chargingSchedulePeriod].sort((a, b) => a.startPeriod - b.startPeriod);
        const period = periods.filter((p) => p.startPeriod <= elapsedS).pop() ?? periods[0];
        const value = period.setpoint ?? period.limit;
        if (value === undefined) return null;
        return schedule.chargingRateUnit === 'A' ? value * this.voltageV : value;
    }

    meterValue() {
        const sampled = (measurand, value, unit) => ({ measurand, value, unitOfMeasure: { unit } });
        return {
            timestamp: now(),
            sampledValue: [
                sampled('Power.Active.Import', Math.max(this.setpointW, 0), 'W'),
                sampled('Power.Active.Export', Math.max(-this.setpointW, 0), 'W'),
                sampled('SoC', Math.round(this.socPercent * 1000) / 1000, 'Percent'),
                sampled('Voltage', this.voltageV, 'V'),
                sampled('Frequency', this.frequencyHz, 'Hz'),
            ],
        };
    }

    // The EV's battery follows the setpoint between two meter readings.
    advance(seconds) {
        const soc = this.socPercent + (this.setpointW * seconds / 3600 / this.capacityWh) * 100;
        this.socPercent = Math.min(100, Math.max(0, soc));
    }

    handleCalls() {
        const client = this.client;
        client.handle('SetChargingProfile', ({ params }) => {
            const entry = { profile: params.chargingProfile, evseId: params.evseId, receivedAt: Date.now() };
            this.profiles.set(params.chargingProfile.id, entry);
            const watts = this.profileSetpoint(entry);
            if (watts !== null) this.follow(watts, 'SetChargingProfile');
            return { status: 'Accepted' };
        });
        client.handle('UpdateDynamicSchedule', ({ params }) => {
            const entry = this.profiles.get(params.chargingProfileId);
            if (!entry || entry.profile.chargingProfileKind !== 'Dynamic') {
                return { status: 'Rejected', statusInfo: { reasonCode: 'UnknownProfile' } };
            }
            const update = params.scheduleUpdate;
            const value = update.setpoint ?? update.limit;
            if (value !== undefined) {
                const unit = entry.profile.chargingSchedule[0].chargingRateUnit;
                this.follow(unit === 'A' ? value * this.voltageV : value, 'UpdateDynamicSchedule');
            }
            return { status: 'Accepted' };
        });
        client.handle('ClearChargingProfile', ({ params }) => {
            const criteria = params.chargingProfileCriteria ?? {};
            let cleared = 0;
            for (const [id, { profile, evseId }] of this.profiles) {
                const matches = (params.chargingProfileId === undefined || params.chargingProfileId === id)
                    && (criteria.evseId === undefined || criteria.evseId === evseId)
                    && (criteria.chargingProfilePurpose === undefined
                        || criteria.chargingProfilePurpose === profile.chargingProfilePurpose)
                    && (criteria.stackLevel === undefined || criteria.stackLevel === profile.stackLevel);
                if (matches) {
                    this.profiles.delete(id);
                    cleared += 1;
                }
            }
            if (cleared > 0 && this.profiles.size === 0) this.follow(0, 'ClearChargingProfile');
            return { status: cleared > 0 ? 'Accepted' : 'Unknown' };
        });
        client.handle('NotifyAllowedEnergyTransfer', () => ({ status: 'Accepted' }));
        client.handle('GetVariables', ({ params }) => ({
            getVariableResult: params.getVariableData.map(({ component, variable, attributeType }) => {
                const value = this.variables.get(`${component.name}/${variable.name}`);
                const result = { component, variable, attributeType: attributeType ?? 'Actual' };
                return value === undefined
                    ? { ...result, attributeStatus: this.knownComponent(component.name) ? 'UnknownVariable' : 'UnknownComponent' }
                    : { ...result, attributeStatus: 'Accepted', attributeValue: value };
            }),
        }));
        client.handle('SetVariables', ({ params }) => ({
            setVariableResult: params.setVariableData.map(({ component, variable, attributeType, attributeValue }) => {
                const key = `${component.name}/${variable.name}`;
                const result = { component, variable, attributeType: attributeType ?? 'Actual' };
                if (!this.variables.has(key)) {
                    return { ...result, attributeStatus: this.knownComponent(component.name) ? 'UnknownVariable' : 'UnknownComponent' };
                }
                if (key === 'OCPPCommCtrlr/HeartbeatInterval') {
                    const seconds = Number(attributeValue);
                    if (!Number.isInteger(seconds) || seconds < 0) return { ...result, attributeStatus: 'Rejected' };
                    this.startHeartbeat(seconds);
                }
                this.variables.set(key, attributeValue);
                return { ...result, attributeStatus: 'Accepted' };
            }),
        }));
        // Anything else: no handler, so ocpp-rpc answers NotImplemented.
    }

    knownComponent(name) {
        return [...this.variables.keys()].some((key) => key.startsWith(`${name}/`));
    }

    async boot() {
        const result = await this.call('BootNotification', {
            reason: 'PowerUp',
            chargingStation: { model: 'ocpp-rpc-station', vendorName: 'resilience-tests', firmwareVersion: '2.2.1' },
        });
        if (result === null) return false;
        if (result.status === 'Accepted') this.startHeartbeat(result.interval);
        return result.status === 'Accepted';
    }
}

async function v2x(station) {
    await station.call('StatusNotification', { timestamp: now(), connectorStatus: 'Occupied', evseId: 1, connectorId: 1 });
    station.transactionId = randomUUID();
    await station.call('TransactionEvent', {
        eventType: 'Started',
        timestamp: now(),
        triggerReason: 'CablePluggedIn',
        seqNo: 0,
        transactionInfo: { transactionId: station.transactionId, chargingState: 'EVConnected' },
        evse: { id: 1, connectorId: 1 },
    });
    await station.call('NotifyEVChargingNeeds', {
        evseId: 1,
        chargingNeeds: {
            requestedEnergyTransfer: 'DC_BPT',
            availableEnergyTransfer: ['DC', 'DC_BPT'],
            controlMode: 'DynamicControl',
            departureTime: new Date(Date.now() + 2 * 3600 * 1000).toISOString(),
            dcChargingParameters: {
                evMaxCurrent: 30,
                evMaxVoltage: 450,
                evMaxPower: 11000,
                evEnergyCapacity: station.capacityWh,
                stateOfCharge: Math.round(station.socPercent),
            },
            v2xChargingParameters: {
                maxChargePower: 11000,
                maxDischargePower: 11000,
                evMinV2XEnergyRequest: -30000,
                evMaxV2XEnergyRequest: 20000,
                targetSoC: 80,
            },
        },
    });
    for (let last = Date.now(); station.client.state === RPCClient.OPEN;) {
        await station.call('MeterValues', { evseId: 1, meterValue: [station.meterValue()] });
        await sleep(500);
        station.advance((Date.now() - last) / 1000);
        last = Date.now();
    }
}

// Calls that break the schema in ways a non-strict client lets through. Each is first
// tried in strict mode (ocpp-rpc must refuse to send it), then sent with strict mode off
// to see what the other end answers. A wait of 5 s stands for "no answer".
const BAD_CALLS = [
    ['wrong_type', 'StatusNotification', { timestamp: now(), connectorStatus: 'Occupied', evseId: '1', connectorId: 1 }],
    ['missing_required', 'StatusNotification', { timestamp: now(), evseId: 1, connectorId: 1 }],
    ['bad_enum', 'StatusNotification', { timestamp: now(), connectorStatus: 'Exploded', evseId: 1, connectorId: 1 }],
    ['unknown_property', 'Heartbeat', { bogus: 1 }],
    ['below_minimum', 'NotifyEVChargingNeeds', { evseId: 0, chargingNeeds: { requestedEnergyTransfer: 'DC_BPT' } }],
];

async function bad(station) {
    const client = station.client;
    for (const [name, method, params] of BAD_CALLS) {
        let local = null;
        try {
            await client.call(method, params);
        } catch (err) {
            local = errorFields(err);
        }
        client.reconfigure({ strictMode: false });
        let remote;
        try {
            remote = { result: await client.call(method, params, { callTimeoutMs: 5000 }) };
        } catch (err) {
            remote = err instanceof TimeoutError ? { timeout: true } : errorFields(err);
        } finally {
            client.reconfigure({ strictMode: true });
        }
        emit('bad_call', { case: name, method, params, local, remote });
    }
    emit('scenario_done', { scenario: 'bad' });
}

const SCENARIOS = { v2x, bad };

async function main() {
    let args;
    try {
        args = parseArgs(process.argv.slice(2));
    } catch (err) {
        emit('error', { where: 'arguments', message: err.message });
        process.exit(2);
    }
    const client = new RPCClient({
        endpoint: args.url,
        identity: args.identity,
        password: args.password ?? null,
        protocols: [args.protocol],
        strictMode: true,
        strictModeValidators: args.protocol === 'ocpp2.1' ? [ocpp21Validator()] : [],
        reconnect: false,
    });
    client.on('strictValidationFailure', ({ method, outbound, isCall, error }) => {
        emit('strict_validation_failure', { method, outbound, isCall, ...errorFields(error) });
    });
    client.on('badMessage', ({ buffer, error }) => {
        emit('error', { where: 'bad_message', message: error.message, frame: buffer.toString('utf8') });
    });
    // Calls from the CSMS and what the station answered, matched by message id.
    const inbound = new Map();
    client.on('call', ({ outbound, payload: [, id, method, params] }) => {
        if (outbound) return;
        inbound.set(id, method);
        emit('received', { method, params });
    });
    client.on('response', ({ outbound, payload }) => {
        if (!outbound || !inbound.has(payload[1])) return;
        const method = inbound.get(payload[1]);
        inbound.delete(payload[1]);
        if (payload[0] === 3) emit('answered', { method, result: payload[2] });
        else emit('answered', { method, error: { code: payload[2], message: payload[3], details: payload[4] } });
    });
    process.on('SIGTERM', () => process.exit(143));
    process.on('SIGINT', () => process.exit(130));
    try {
        await client.connect();
    } catch (err) {
        emit('error', { where: 'connect', message: err.message, status: err.code ?? null });
        process.exit(1);
    }
    client.on('close', ({ code, reason }) => {
        emit('closed', { code, reason: String(reason ?? '') });
        process.exit(0);
    });
    const stop = () => client.close({ code: 1000, reason: 'station stopped' });
    process.removeAllListeners('SIGTERM').on('SIGTERM', stop);
    process.removeAllListeners('SIGINT').on('SIGINT', stop);
    emit('connected', { protocol: client.protocol, identity: args.identity });
    const station = new Station(client);
    station.handleCalls();
    if (await station.boot()) {
        await SCENARIOS[args.scenario](station);
    } else {
        emit('error', { where: 'boot', message: 'BootNotification not accepted' });
    }
}

main().catch((err) => {
    emit('error', { where: 'station', message: err.stack ?? String(err) });
    process.exit(1);
});
